"""Faults, concurrency and hostile input, each through the real entry points: `python -m
nesterov_landscape` and `python -m multirun_analysis` as subprocesses, real signals, real W&B
offline runs, processes started together. Nothing may be lost, mixed or duplicated."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from nesterov_landscape import job_claim
from nesterov_landscape.config import ConfigError, validate

from .helpers import ROOT, TINY, cli_env, compose_config, run_analysis, run_cli, start_cli
from .synthetic import completed_summary, decaying_history, job_config, write_job, write_multirun_yaml

# A job long enough to be caught training (about 0.5 ms per epoch here); its log has a line at
# epochs 800, 1600, ... (a tenth of the epochs), the moment the tests strike.
LONG = [*TINY, "trainer.epochs=8000", "trainer.log_every=100", "probe=none"]

# (override, the key the one-line message must name): issue 8's reproductions ...
ISSUE_BAD_INPUT = [
    ("probe.gradient_line.t_step=1e-9", "probe.gradient_line's grid of 1,999,999,999 points"),
    ("probe.gradient_line.t_max=inf", "probe.gradient_line.t_max"),
    ("probe.gradient_line.t_min=-inf", "probe.gradient_line.t_min"),
    ("probe.gradient_line.t_min=nan", "probe.gradient_line.t_min"),
    ("model.width=1000000", "trainer.max_memory_gb"),
    ("data.n_points=1000000000", "trainer.max_memory_gb"),
    ("seed=-1", "seed"),
    ('logger.tags=[""]', "logger.tags"),
    (f"logger.tags=[{'x' * 65}]", "logger.tags"),
    ("trainer.threads=1000", "trainer.threads"),
    ("probe=hessian probe.hessian.top_k=100 probe.hessian.lanczos_steps=5", "probe.hessian.top_k"),
]
# ... and their neighbours
BAD_INPUT = ISSUE_BAD_INPUT + [
    ("probe=random_line probe.random_line.t_step=1e-8", "probe.random_line's grid"),
    ("probe.gradient_line.t_min=0.001 probe.gradient_line.t_max=0.002", "the grid is empty"),
    ("probe.gradient_line.every=1 trainer.epochs=100000", "checkpoints"),
    ("trainer.epochs=1000000000 trainer.log_every=1", "the history"),
    ("probe=hessian probe.hessian.top_k=200 probe.hessian.lanczos_steps=200", "the number of weights"),
    ("probe.gradient_line.radii=[inf]", "probe.gradient_line.radii"),
    ("data.seed=-1", "data.seed"),
    ("logger.project=a/b", "logger.project"),
    ("trainer.max_memory_gb=0", "trainer.max_memory_gb"),
]


def offline_runs(job_dir: Path) -> list[Path]:
    return sorted(job_dir.glob("wandb/offline-run-*"))


def wandb_state(run_dir: Path) -> str:
    """The run's state as `wandb leet inspect` reads it from the .wandb file, e.g. "finished (exit code 0)"."""
    wandb_cli = shutil.which("wandb", path=str(ROOT / ".venv" / "bin")) or shutil.which("wandb")
    out = subprocess.run([wandb_cli, "leet", "inspect", "--summary", str(run_dir)], capture_output=True, text=True)
    return next((line.split(None, 1)[1] for line in out.stdout.splitlines() if line.startswith("state")), "")


def summary(job_dir: Path) -> dict:
    return json.loads((job_dir / "summary.json").read_text())


def wait_for(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def training(job_dir: Path, epoch: int = 800) -> bool:
    """The job has logged its first tenth of training (`epoch` for LONG)."""
    log = job_dir / "nesterov_landscape.log"
    return log.exists() and f"epoch {epoch}:" in log.read_text()


def assert_one_finished_run_per_job(job_dirs: list[Path]) -> None:
    """Exactly one W&B offline run per job folder, closed, and a completed summary: what `wandb
    sync` uploads is one complete run per job."""
    for job in job_dirs:
        runs = offline_runs(job)
        assert len(runs) == 1, f"{job}: {runs}"
        assert wandb_state(runs[0]) == "finished (exit code 0)", job
        assert summary(job)["status"] == "completed", job
        assert summary(job)["wandb"]["id"] in runs[0].name
        assert not (job / job_claim.CLAIM_FILE).exists()  # claims are released


# --- bad input: a one-line error naming the key, no folder, checked before any work ---


@pytest.mark.parametrize("override,key", BAD_INPUT)
def test_bad_input_is_refused_by_validate(override, key):
    with pytest.raises(ConfigError) as error:
        validate(compose_config([*TINY, *override.split()]), cuda_available=False)
    assert key in str(error.value) and "\n" not in str(error.value)


def test_the_memory_bound_is_a_config_key():
    big = [*TINY, "probe.gradient_line.t_step=5e-7"]  # 4,000,001 points: about 7.7 GB
    with pytest.raises(ConfigError, match="trainer.max_memory_gb=4"):
        validate(compose_config(big), cuda_available=False)
    validate(compose_config([*big, "trainer.max_memory_gb=10"]), cuda_available=False)


@pytest.mark.slow
@pytest.mark.guards("foreign files deleted")
def test_bad_input_on_the_command_line_leaves_nothing(tmp_path):
    """Issue 8's cases as a user types them, plus a sweep with no jobs; four at a time (each
    process takes 2 to 3 s of CPU to import torch and W&B, so the neighbours are checked above only)."""
    cases = [(o.split(), key) for o, key in ISSUE_BAD_INPUT] + [
        (["seed=range(0,0)", "--multirun"], "seed=range(0,0) gives no values"),
    ]

    def run(i: int):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        return cwd, run_cli(*TINY, *cases[i][0], cwd=cwd, timeout=120)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(len(cases))))
    for (args, key), (cwd, result) in zip(cases, results):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], (args, result.stderr)
        assert list(cwd.iterdir()) == [], args  # no outputs/ or multirun/ folder at all


LAUNCHERS = [  # every launcher, each as it runs on this machine
    ["hydra/launcher=basic"],
    ["hydra/launcher=joblib"],
    ["hydra/launcher=submitit_local"],
    ["hydra/launcher=batched"],
    ["hydra/launcher=batched_slurm", "hydra.launcher.cluster=local"],
]


@pytest.mark.guards("lost", "mixed")
def test_two_jobs_in_one_folder_are_refused_before_any_job_runs(tmp_path):
    """Issue 17: a subdir without the job number puts seeds 0 and 1 of each lr in one folder,
    where each job would replace the other's results. Every launcher refuses the sweep."""
    subdir = "lr${optimizer.lr}"

    def run(launcher: list[str]):
        cwd = tmp_path / launcher[0].split("=")[1]
        cwd.mkdir()
        sweep = ["seed=0,1", "optimizer.lr=0.005,0.01", f"hydra.sweep.subdir={subdir}", "hydra.sweep.dir=sweep"]
        return cwd, run_cli(*TINY, "probe=none", *sweep, *launcher, "--multirun", cwd=cwd, timeout=120)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, LAUNCHERS))
    for launcher, (cwd, result) in zip(LAUNCHERS, results):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (launcher, result.stderr)
        line = lines[-1]
        assert line.startswith("error: jobs #0 (") and f"and #2 ({' '.join(TINY)} probe=none" in line, launcher
        assert "seed=0 optimizer.lr=0.005" in line and "seed=1 optimizer.lr=0.005" in line, launcher
        assert f"the folder {cwd / 'sweep' / 'lr0.005'}" in line and f"hydra.sweep.subdir={subdir}" in line, launcher
        assert list(cwd.iterdir()) == [], launcher  # no sweep folder, no job folder


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; a link by where it points (W&B's logs/debug-core.log links to a log
    its service process keeps appending to)."""
    return {
        str(p.relative_to(folder)): os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


@pytest.mark.guards("foreign files deleted")
def test_a_job_folder_holding_foreign_files_refuses_the_sweep_before_any_job_runs(tmp_path):
    """Issue 17: a job folder holding result-named files this tool did not write: every launcher
    refuses the whole sweep before Hydra (or the batched launcher) writes any job's .hydra/."""

    def run(launcher: list[str]):
        cwd = tmp_path / launcher[0].split("=")[1]
        (cwd / "sweep" / "1").mkdir(parents=True)
        (cwd / "sweep" / "1" / "history.csv").write_text("epoch,loss\n0,1\n")  # a user's, say
        (cwd / "sweep" / "1" / "notes.txt").write_text("mine\n")
        result = run_cli(*TINY, "seed=0,1", "hydra.sweep.dir=sweep", *launcher, "--multirun", cwd=cwd, timeout=120)
        return cwd, result

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, LAUNCHERS))
    for launcher, (cwd, result) in zip(LAUNCHERS, results):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (launcher, result.stderr)
        assert lines[0] == (
            f"error: job #1 ({' '.join(TINY)} seed=1): {cwd / 'sweep' / '1'} holds files this tool did not write "
            "(history.csv); set trainer.overwrite=true to write there anyway; nothing was run"
        ), launcher
        assert files_in(cwd / "sweep") == {"1/history.csv": b"epoch,loss\n0,1\n", "1/notes.txt": b"mine\n"}


@pytest.mark.slow
@pytest.mark.guards("lost", "foreign files deleted")
def test_replacing_another_configs_finished_result_refuses_the_sweep_unless_allowed(tmp_path):
    sweep = tmp_path / "sweep"
    first = run_cli(*TINY, "seed=5", f"hydra.run.dir={sweep / '1'}", cwd=tmp_path)  # a finished run, this tool's
    assert first.returncode == 0, first.stderr
    before = files_in(sweep)
    args = [*TINY, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    with ThreadPoolExecutor(2) as pool:
        runs = pool.map(
            lambda launcher: run_cli(*args, launcher, "--multirun", cwd=tmp_path), LAUNCHERS[0] + LAUNCHERS[3]
        )
        refused = list(runs)
    for result in refused:
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert (
            f"job #1 ({' '.join(TINY)} seed=1): {sweep / '1'} holds a completed run of another config (seed=5)"
            in (lines[0])
        )
        assert lines[0].endswith("set trainer.overwrite=true to write there anyway; nothing was run")
    assert files_in(sweep) == before
    allowed = run_cli(*args, "hydra/launcher=batched", "trainer.overwrite=true", "--multirun", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert [summary(sweep / str(n))["seed"] for n in (0, 1)] == [0, 1]


def without_root_privileges() -> tuple[str, ...]:
    """A run_cli prefix under which file permissions hold. Root passes over them, so a test run by
    root runs the command in a user namespace of its own (`unshare --user`): there it still owns
    root's files, but has no capability to write where their permissions say no. A command, not a
    preexec_fn unshare(2): once this process has run a job in-process (W&B's threads), the kernel
    refuses that call in its forked children with EINVAL."""
    return ("unshare", "--user", "--") if os.geteuid() == 0 else ()


@pytest.mark.guards("foreign files deleted")
def test_a_sweep_folder_that_cannot_be_written_is_one_line(tmp_path):
    """Issue 17: a read-only sweep folder, another user's folder and a name longer than the file
    system allows printed tracebacks; so did --cfg with --multirun. Each is one line and exit 2."""
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o555)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    if os.geteuid() == 0:
        os.chown(theirs, 65534, 65534)  # nobody's
    elif not os.access("/", os.W_OK):
        theirs = Path("/")  # root's
    else:
        pytest.skip("needs a folder of another user that this user cannot write")
    cases = [
        ([f"hydra.sweep.dir={read_only}"], f"hydra.sweep.dir={read_only}: Permission denied"),
        ([f"hydra.sweep.dir={theirs / 'sweep'}"], f"hydra.sweep.dir={theirs / 'sweep'}: Permission denied"),
        ([f"hydra.sweep.dir={'x' * 300}"], "File name too long"),
        (["--cfg", "job"], "Only one of --run, --multirun, --cfg"),
    ]
    for args, message in cases:
        result = run_cli(
            *TINY, "seed=0,1", *args, "--multirun", cwd=tmp_path, timeout=120, prefix=without_root_privileges()
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("error: ") and message in lines[0], (args, result.stderr)
    assert list(read_only.iterdir()) == [] and not (theirs / "sweep").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["read_only", "theirs"]


# --- kill -9, Ctrl-C, failure, then the same command again: one W&B run per job ---


@pytest.mark.slow
@pytest.mark.guards("lost", "duplicated")
def test_kill_9_during_a_sweep_then_rerun_gives_one_wandb_run_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*LONG, "seed=0,1,2", f"hydra.sweep.dir={sweep}", "--multirun"]
    first = start_cli(*args, cwd=tmp_path, log=tmp_path / "first.log")
    wait_for(lambda: training(sweep / "1"), what="job 1 to train")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (sweep / "0" / "summary.json").exists() and not (sweep / "1" / "summary.json").exists()
    assert len(offline_runs(sweep / "1")) == 1 and wandb_state(offline_runs(sweep / "1")[0]) != "finished (exit code 0)"
    finished_before = (sweep / "0" / "summary.json").read_text()
    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert (sweep / "0" / "summary.json").read_text() == finished_before  # not redone
    assert_one_finished_run_per_job([sweep / str(n) for n in range(3)])


# (signal, the error the job records): SIGTERM (kill, scancel, a shutdown) is handled as Ctrl-C is
STOPPING_SIGNALS = [(signal.SIGINT, "KeyboardInterrupt"), (signal.SIGTERM, "KeyboardInterrupt: SIGTERM")]


@pytest.mark.slow
@pytest.mark.parametrize("signum,error", STOPPING_SIGNALS, ids=["ctrl-c", "sigterm"])
@pytest.mark.guards("lost", "duplicated")
def test_ctrl_c_or_sigterm_records_interrupted_and_the_same_command_finishes_it(signum, error, tmp_path):
    job = tmp_path / "job"
    args = [*LONG, f"hydra.run.dir={job}"]
    first = start_cli(*args, cwd=tmp_path, log=tmp_path / "first.log")
    wait_for(lambda: training(job), what="the job to train")
    first.send_signal(signum)
    assert first.wait(timeout=60) == 130
    output = (tmp_path / "first.log").read_text()
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith(f"interrupted: {job} stopped (status interrupted)")
    interrupted = summary(job)
    assert interrupted["status"] == "interrupted" and interrupted["error"] == error
    (run,) = offline_runs(job)
    assert wandb_state(run) == "failed (exit code 130)"  # closed, not left "running"
    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert_one_finished_run_per_job([job])


@pytest.mark.slow
@pytest.mark.parametrize(
    "n_jobs,signum",
    [(2, signal.SIGINT), (1, signal.SIGINT), (2, signal.SIGTERM)],
    ids=["ctrl-c-2-workers", "ctrl-c-in-process", "sigterm-2-workers"],
)
@pytest.mark.guards("lost")
def test_ctrl_c_of_a_batched_sweep_records_each_running_job_interrupted(n_jobs, signum, tmp_path):
    """Issue 17: a batched Ctrl-C printed workers' tracebacks and an empty count, and no job said
    interrupted. Here Ctrl-C reaches the whole process group, as from a terminal (SIGTERM: the
    launching process alone, as from `kill`), while a stack of two long jobs trains and a stack of
    two short ones has finished."""
    sweep = tmp_path / "sweep"
    args = [*LONG, "trainer.epochs=20,400000", "seed=0,1", "hydra/launcher=batched", f"hydra.launcher.n_jobs={n_jobs}"]
    with (tmp_path / "sweep.log").open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nesterov_landscape", *args, f"hydra.sweep.dir={sweep}", "--multirun"],
            cwd=tmp_path,
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives a command
        )
    try:
        short, long = [sweep / "0", sweep / "1"], [sweep / "2", sweep / "3"]
        wait_for(lambda: all((job / "summary.json").exists() for job in short), what="the short jobs to finish")
        time.sleep(3)  # the long stack trains: 400,000 epochs take minutes
        finished = [(job / "summary.json").read_text() for job in short]
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        assert process.wait(timeout=120) == 130
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = (tmp_path / "sweep.log").read_text()
    assert "Traceback" not in output, output
    assert "4 jobs in " in output and "s: 2 completed, 2 interrupted\n" in output, output
    assert output.strip().splitlines()[-1] == (
        "interrupted: 2 running jobs recorded status interrupted; run the same command to finish the sweep"
    )
    assert [(job / "summary.json").read_text() for job in short] == finished  # finished jobs stay finished
    for job in long:
        interrupted = summary(job)
        assert interrupted["status"] == "interrupted" and interrupted["error"] == "KeyboardInterrupt"
        assert interrupted["config"]["trainer"]["epochs"] == 400000 and interrupted["job"]["output_dir"] == str(job)
        assert (job / ".hydra" / "config.yaml").exists() and not (job / job_claim.CLAIM_FILE).exists()
        assert not offline_runs(job)  # it was training: no W&B run was started


def descendants(pid: int) -> list[int]:
    """The processes under `pid` (its workers, theirs: W&B's service), as /proc lists them now."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [child for c in out for child in (int(c), *descendants(int(c)))]


def kill_the_launcher_and_wait_for_its_workers(launcher: subprocess.Popen) -> None:
    """kill -9 a batched launcher: its workers, and W&B's services under them, must be gone 10 s
    later. Any left are killed (this test's processes only)."""
    left = descendants(launcher.pid)
    launcher.kill()
    launcher.wait()
    try:
        wait_for(lambda: not any(alive(pid) for pid in left), 10, "the workers to exit")
    finally:
        for pid in left:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """The process runs: it is in /proc and not a zombie (which PID 1 may take seconds to reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow
@pytest.mark.guards("lost", "duplicated")
def test_the_workers_of_a_killed_batched_launcher_stop_and_the_same_command_finishes(tmp_path):
    """Issue 18: the workers of a batched launcher killed with kill -9 went on alone, finished their
    stacks, wrote job folders and then blocked for ever. Now each stops its stack with its jobs
    recorded interrupted (its main thread gets SIGTERM once the launcher is gone) and exits."""
    sweep = tmp_path / "sweep"
    args = [*LONG, "trainer.epochs=20,20000", "seed=0,1", "hydra/launcher=batched", "hydra.launcher.n_jobs=2"]
    args += [f"hydra.sweep.dir={sweep}", "--multirun"]
    launcher = start_cli(*args, cwd=tmp_path, log=tmp_path / "first.log")
    short, long = [sweep / "0", sweep / "1"], [sweep / "2", sweep / "3"]
    try:
        wait_for(lambda: all((job / "summary.json").exists() for job in short), what="the short stack")
        finished = [(job / "summary.json").read_text() for job in short]  # the long stack trains in the other worker
    finally:
        kill_the_launcher_and_wait_for_its_workers(launcher)
    for job in long:
        assert summary(job)["status"] == "interrupted" and not offline_runs(job)
        assert summary(job)["error"] == f"SweepProcessDied: the sweep's process (pid {launcher.pid}) died"
    assert [(job / "summary.json").read_text() for job in short] == finished
    again = run_cli(*args, cwd=tmp_path)
    output = again.stdout + again.stderr
    assert again.returncode == 0 and "4 jobs in " in output and "s: 2 already done, 2 completed" in output, output
    assert_one_finished_run_per_job(short + long)


@pytest.mark.slow
@pytest.mark.guards("lost", "duplicated")
def test_a_job_whose_launcher_dies_as_its_wandb_run_is_written_closes_it_once(tmp_path):
    """A stacked job writing its history to W&B when the launcher dies stops once, as the worker
    tells it (its own check of the sweep's process is off in a worker): status interrupted, its
    run closed with exit code 130, and the same command finishes the sweep. Stopped twice, by that
    check and a moment later by the worker's SIGTERM, a job left its run open in 1 of 6 kills."""
    sweep = tmp_path / "sweep"
    args = [*TINY, "trainer.epochs=20000", "trainer.log_every=1", "probe=none", "seed=0,1,2,3"]
    args += ["hydra/launcher=batched", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}", "--multirun"]
    launcher = start_cli(*args, cwd=tmp_path, log=tmp_path / "first.log")
    jobs = [sweep / str(n) for n in range(4)]
    try:
        wait_for(lambda: any(training(job, 2000) for job in jobs), what="a stacked job's history to be written")
    finally:
        kill_the_launcher_and_wait_for_its_workers(launcher)
    assert any(offline_runs(job) for job in jobs)
    for job in jobs:
        assert summary(job)["status"] == "interrupted", job
        assert summary(job)["error"] == f"SweepProcessDied: the sweep's process (pid {launcher.pid}) died"
        assert all(wandb_state(run) == "failed (exit code 130)" for run in offline_runs(job)), job
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_finished_run_per_job(jobs)


# A launcher as the batched one starts its pool (_start_workers), whose worker holds Ctrl-C and SIGTERM off as
# it does while W&B's service starts (warm_up) or while it records interrupted jobs.
LAUNCHER_OF_A_WORKER_HOLDING_SIGNALS = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from hydra_plugins.nesterov_landscape_batched._stack_worker import init_worker, interrupts_held

def hold_signals_off(marker):
    with interrupts_held():
        Path(marker).write_text(str(os.getpid()))
        time.sleep(3)

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(1, mp_context=context, initializer=init_worker, initargs=(context.Event(), os.getpid()))
    pool.submit(hold_signals_off, sys.argv[1])
    time.sleep(600)
"""


def test_a_worker_that_held_signals_off_when_its_launcher_died_still_exits(tmp_path):
    """CI at stop 27: one worker of a killed launcher never exited. Its launcher's death could reach
    it while it held signals off, as it does while W&B's service starts, and then never again. Now
    its main thread gets SIGTERM again each second: this worker holds signals off for 3 s after the
    launcher's kill -9, so the first is lost, and a later one must end it."""
    script, marker = tmp_path / "launcher.py", tmp_path / "worker.pid"
    script.write_text(LAUNCHER_OF_A_WORKER_HOLDING_SIGNALS)
    env = cli_env({"PYTHONPATH": str(ROOT)})
    with (tmp_path / "launcher.log").open("w") as out:  # its resource tracker's warnings after kill -9
        launcher = subprocess.Popen(
            [sys.executable, str(script), str(marker)], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    worker = None
    try:
        wait_for(lambda: marker.exists() and marker.read_text(), what="the worker to hold signals off")
        worker = int(marker.read_text())
        launcher.kill()
        launcher.wait()
        assert alive(worker)  # it outlived the launcher ...
        wait_for(lambda: not alive(worker), 10, "the worker to exit")  # ... and then ended
    finally:
        for pid in [launcher.pid] + ([worker] if worker else []):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.guards("mixed", "duplicated")
def test_a_failed_job_run_again_replaces_its_wandb_run_and_files(tmp_path):
    job = tmp_path / "job"
    (job / "history.csv").mkdir(parents=True)  # a real failure: the history cannot be written
    failed = run_cli(*TINY, f"hydra.run.dir={job}", "trainer.overwrite=true", cwd=tmp_path)  # a folder it did not make
    assert failed.returncode != 0 and summary(job)["status"] == "failed"
    assert len(offline_runs(job)) == 1
    (job / "history.csv").rmdir()
    again = run_cli(*TINY, f"hydra.run.dir={job}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert_one_finished_run_per_job([job])


# --- concurrency: claims ---


@pytest.mark.slow
@pytest.mark.guards("duplicated", "mixed")
def test_two_identical_sweeps_at_once_run_each_job_once(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*TINY, "trainer.epochs=1500", "seed=0,1,2,3", f"hydra.sweep.dir={sweep}", "--multirun"]
    a = start_cli(*args, cwd=tmp_path, log=tmp_path / "a.log")
    b = start_cli(*args, cwd=tmp_path, log=tmp_path / "b.log")
    assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert logs.count("completed: final loss") == 4  # each job trained by one process only
    assert_one_finished_run_per_job([sweep / str(n) for n in range(4)])


@pytest.mark.slow
@pytest.mark.guards("duplicated", "mixed")
def test_two_identical_batched_sweeps_at_once_run_each_job_once(tmp_path):
    """Both launchers find every job unfinished before either sweep's stacks train. A batched job's
    summary is read once, by its launcher, so the worker that then claims the job must see that the
    other sweep wrote it since, and skip it: each job is trained and written by one sweep only."""
    sweep = tmp_path / "sweep"
    args = [*TINY, "trainer.epochs=1500", "seed=0,1,2,3", "hydra/launcher=batched", f"hydra.sweep.dir={sweep}"]
    a = start_cli(*args, "--multirun", cwd=tmp_path, log=tmp_path / "a.log")
    b = start_cli(*args, "--multirun", cwd=tmp_path, log=tmp_path / "b.log")
    assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0
    counts = {}  # how each sweep's jobs ended: its closing line, "4 jobs in 5.2 s: 3 completed, 1 skipped"
    for name in ("a", "b"):
        (line,) = [line for line in (tmp_path / f"{name}.log").read_text().splitlines() if "4 jobs in " in line]
        for count in line.split(": ")[-1].split(", "):
            number, kind = count.split(" ", 1)
            counts[kind] = counts.get(kind, 0) + int(number)
    assert counts.get("completed") == 4 and sum(counts.values()) == 8, counts
    assert_one_finished_run_per_job([sweep / str(n) for n in range(4)])


@pytest.mark.slow
@pytest.mark.guards("mixed", "lost")
def test_two_single_jobs_in_the_same_second_get_two_complete_folders(tmp_path):
    """Each job finds the default outputs/<date>/<time> of its start taken (by an earlier job's
    folder, made here for the next minute) and both race for the next free name."""
    now = datetime.now()
    seconds = [now + timedelta(seconds=s) for s in range(60)]
    taken = [tmp_path / "outputs" / f"{t:%Y-%m-%d}" / f"{t:%H-%M-%S}" for t in seconds]
    for folder in taken:
        (folder / ".hydra").mkdir(parents=True)
        (folder / "summary.json").write_text('{"status": "completed", "seed": 99}')
    time.sleep(1 - datetime.now().microsecond / 1e6)  # start both at the top of a second
    one = start_cli(*TINY, "seed=1", "probe=[gradient_line,hessian]", cwd=tmp_path, log=tmp_path / "one.log")
    two = start_cli(*TINY, "seed=2", cwd=tmp_path, log=tmp_path / "two.log")
    assert one.wait(timeout=120) == 0 and two.wait(timeout=120) == 0
    for folder in taken:  # the earlier jobs' folders are untouched
        assert sorted(p.name for p in folder.iterdir()) == [".hydra", "summary.json"]
        assert json.loads((folder / "summary.json").read_text())["seed"] == 99
    new = [p for p in (tmp_path / "outputs").glob("*/*") if p not in taken]
    assert len(new) == 2
    by_seed = {summary(p)["seed"]: p for p in new}
    assert sorted(by_seed) == [1, 2]
    for seed, folder in by_seed.items():
        assert f"seed: {seed}\n" in (folder / ".hydra" / "config.yaml").read_text()
        assert (folder / "hessian.csv").exists() == (seed == 1)
        assert f"seed={seed}" in (folder / ".hydra" / "overrides.yaml").read_text().replace("- ", "")
    assert_one_finished_run_per_job(new)


CLAIM_AND_WAIT = """
import pathlib, sys, time
from nesterov_landscape import job_claim
job_claim.acquire(pathlib.Path(sys.argv[1]))
print("claimed", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.guards("duplicated")
def test_a_folder_claimed_by_a_live_process_is_skipped_and_a_dead_ones_claim_taken_over(tmp_path):
    sweep = tmp_path / "sweep"
    holder = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(sweep / "1")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "claimed\n"
        args = [*TINY, "seed=0,1", f"hydra.sweep.dir={sweep}", "--multirun"]
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"skipping job 1: {sweep / '1'} is in use by pid {holder.pid}" in result.stdout + result.stderr
        assert not (sweep / "1" / "summary.json").exists() and not offline_runs(sweep / "1")
        single = run_cli(*TINY, f"hydra.run.dir={sweep / '1'}", cwd=tmp_path)
        lines = single.stderr.strip().splitlines()
        assert single.returncode == 2 and len(lines) == 1 and f"in use by pid {holder.pid}" in lines[0]
    finally:
        holder.kill()  # kill -9: its claim dies with it
        holder.wait()
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert_one_finished_run_per_job([sweep / "0", sweep / "1"])


def test_claiming_a_folder_is_cheap(tmp_path):
    folders = [tmp_path / str(i) for i in range(2000)]
    for folder in folders:
        folder.mkdir()
    start_time = time.perf_counter()
    for folder in folders:
        job_claim.acquire(folder).release()
    per_job = (time.perf_counter() - start_time) / len(folders)
    assert per_job < 1e-3, f"{per_job * 1e6:.0f} us per claim and release"


def test_a_claim_excludes_a_second_claimant(tmp_path):
    claim = job_claim.acquire(tmp_path)
    with pytest.raises(job_claim.FolderClaimed, match=f"pid {os.getpid()}"):
        job_claim.acquire(tmp_path)  # a second open file description: flock excludes it too
    claim.release()
    job_claim.acquire(tmp_path).release()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
@pytest.mark.guards("lost")
def test_joblib_workers_of_a_killed_sweep_stop_their_jobs(signum, tmp_path):
    """SIGTERM ends the joblib sweep's process at once too: raising there, as Ctrl-C does, would
    make joblib kill its workers with SIGKILL before their jobs could record anything."""
    sweep = tmp_path / "sweep"
    args = [*LONG, "trainer.epochs=40000", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    parent = start_cli(*args, f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path, log=tmp_path / "sweep.log")
    workers = []
    try:
        wait_for(lambda: training(sweep / "0", 4000) and training(sweep / "1", 4000), what="both jobs to train")
        workers = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
        loky_workers = [pid for pid in workers if "LokyProcess" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(loky_workers) == 2
        parent.send_signal(signum)
        assert parent.wait() == -signal.SIGKILL if signum == signal.SIGKILL else 128 + signal.SIGTERM
        for job in (sweep / "0", sweep / "1"):
            wait_for(lambda: (job / "summary.json").exists(), timeout=30, what=f"{job} to stop")
            assert summary(job)["status"] == "interrupted" and "sweep's process" in summary(job)["error"]
            (run,) = offline_runs(job)
            assert wandb_state(run) == "failed (exit code 130)"
            assert not (job / job_claim.CLAIM_FILE).exists()
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in loky_workers), 30, "the workers to exit")
        if signum == signal.SIGTERM:
            output = (tmp_path / "sweep.log").read_text()  # then the resource trackers' warnings, as after kill -9
            assert "\nterminated: each running job stops at its next history row (status interrupted)" in output
    finally:
        parent.kill()
        parent.wait()
        for pid in workers:  # loky's helper processes of the killed sweep, which this test started
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- analysis: one job's files never stop it ---


GARBAGE = [  # (file, content), each in its own otherwise complete job
    ("history.csv", b"epoch,loss,grad_norm\n0,abc,1\n"),
    ("summary.json", b'{"status": "completed", "final_loss": "oops"}'),
    ("summary.json", b'{"status": "completed", "final_lo'),  # truncated
    ("summary.json", b'{"status": "completed", "config": "not a mapping"}'),
    ("summary.json", b'["a", "list"]'),
    ("summary.json", b'{"status": "completed", "final_loss": true}'),
    ("landscape.csv", b"t,phi,phi_dd,mu\n0,1,2,\n0.1,x,2,3\n"),
    ("history.csv", b"epoch,loss\n0,\xff\xfe\n"),  # not UTF-8
    ("history.csv", b""),  # empty
]


def test_analysis_reports_every_bad_file_and_analyses_the_rest(tmp_path):
    sweep = tmp_path / "sweep"
    write_multirun_yaml(sweep, ["model.width=8", f"seed=range(0,{2 + len(GARBAGE)})"])
    for seed in (0, 1):
        write_job(
            sweep / str(seed),
            job_config(8, seed),
            ["model.width=8", f"seed={seed}"],
            completed_summary(10.0 ** -(10 + seed), 2.0, 1.0),
            decaying_history(1 / 100),
            2.0,
        )
    bad_files = []
    for seed, (name, content) in enumerate(GARBAGE, start=2):
        job = write_job(
            sweep / str(seed),
            job_config(8, seed),
            ["model.width=8", f"seed={seed}"],
            completed_summary(1e-10, 2.0, 1.0),
            decaying_history(1 / 100),
        )
        (job / name).write_bytes(content)
        bad_files.append(job / name)
    result = run_analysis(str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    for path in bad_files:
        assert any(str(path) in line for line in warnings), path
    runs = pd.read_csv(sweep / "analysis" / "runs.csv").set_index("seed")
    assert list(runs.loc[[0, 1], "status"]) == ["completed", "completed"]
    assert (runs.drop([0, 1])["status"] == "missing").all()
    assert runs["duplicate"].sum() == 0
    table = pd.read_csv(sweep / "analysis" / "summary.csv").iloc[0]
    assert (table["completed"], table["missing"]) == (2, len(GARBAGE))
    assert table["final_loss_min"] == 1e-11 and table["final_loss_max"] == 1e-10  # the good jobs only


def test_analysis_interrupted_jobs_count_as_interrupted(tmp_path):
    sweep = tmp_path / "sweep"
    write_job(sweep / "0", job_config(8, 0), ["seed=0"], {"status": "interrupted", "error": "KeyboardInterrupt"})
    write_job(sweep / "1", job_config(8, 1), ["seed=1"], completed_summary(1e-10, 2.0, 1.0), decaying_history(1 / 100))
    result = run_analysis(str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = pd.read_csv(sweep / "analysis" / "runs.csv").set_index("seed")
    assert runs.loc[0, "status"] == "interrupted" and runs.loc[1, "status"] == "completed"


def test_unstarted_jobs_of_a_sweep_without_folders_are_not_duplicates(tmp_path):
    sweep = tmp_path / "sweep"
    write_multirun_yaml(sweep, ["seed=0,1,2"])
    result = run_analysis(str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "duplicate" not in result.stderr
    runs = pd.read_csv(sweep / "analysis" / "runs.csv")
    assert sorted(runs["seed"]) == [0, 1, 2] and (runs["status"] == "missing").all() and runs["duplicate"].sum() == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--out", "a_file/analysis"], "a_file is a file, not a folder"),
        (["--out", "a_file"], "a_file is a file, not a folder"),
        (["--workers", "0"], "--workers 0 is not allowed"),
        (["--workers", "-3"], "--workers -3 is not allowed"),
    ],
)
def test_analysis_argument_errors_are_one_line(args, message, tmp_path):
    sweep = tmp_path / "sweep"
    write_job(sweep / "0", job_config(8, 0), ["seed=0"], completed_summary(1e-10, 2.0, 1.0))
    (tmp_path / "a_file").write_text("not a folder")
    result = run_analysis(str(sweep), *args, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (sweep / "analysis").exists()


# --- analysis: sweeps in the states a hostile pass found (issue 17), real job folders ---


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> Path:
    """A real sweep of three tiny jobs (seed=0,1,2), made once: each test damages a copy of it."""
    root = tmp_path_factory.mktemp("real_sweep")
    wandb_dirs = {f"WANDB_{name}_DIR": str(root / f"wandb-{name.lower()}") for name in ("CONFIG", "CACHE", "DATA")}
    result = run_cli(*TINY, "seed=0,1,2", f"hydra.sweep.dir={root / 'sweep'}", "--multirun", cwd=root, env=wandb_dirs)
    assert result.returncode == 0, result.stderr
    return root / "sweep"


def copy_sweep(sweep: Path, to: Path) -> Path:
    return Path(shutil.copytree(sweep, to, symlinks=True))  # W&B's latest-run links stay links


def tree(folder: Path) -> dict[str, int]:
    """Every path under `folder` with its size: what an analysis must leave as it was."""
    return {str(p.relative_to(folder)): p.lstat().st_size for p in folder.rglob("*")}


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.guards("mixed")
def test_a_job_folder_left_from_an_earlier_sweep_is_reported_and_left_out(tmp_path):
    """seed=0,1,2 then seed=10,11 into one folder (allowed to replace finished runs of other seeds):
    0 and 1 are redone, 2 stays from the first sweep."""
    sweep = tmp_path / "sweep"
    for seeds in ("0,1,2", "10,11"):
        args = [*TINY, f"seed={seeds}", "trainer.overwrite=true", f"hydra.sweep.dir={sweep}", "--multirun"]
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert [summary(sweep / n)["seed"] for n in ("0", "1", "2")] == [10, 11, 2]
    result = run_analysis(str(sweep), "--wandb-mode", "disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = sweep / "analysis"
    runs = pd.read_csv(out / "runs.csv").set_index("job_dir")
    assert sorted(runs.index) == [str(sweep / "0"), str(sweep / "1")]
    for job in runs.index:
        assert runs.loc[job, "seed"] == summary(Path(job))["seed"]
        assert runs.loc[job, "final_loss"] == summary(Path(job))["final_loss"]
    problems = (out / "problems.txt").read_text().splitlines()
    (stale,) = [line for line in problems if str(sweep / "2") in line]
    assert stale.startswith(f"stale job folder {sweep / '2'}: ") and "seed=2" in stale
    assert str(sweep / "multirun.yaml") in stale and "left out of the tables" in stale
    assert "\n2 runs: 2 completed, 0 diverged, 0 failed, 0 interrupted, 0 missing" in (out / "report.md").read_text()
    assert list(pd.read_csv(out / "summary.csv")["runs"]) == [2]


@pytest.mark.slow
@pytest.mark.guards("duplicated")
def test_a_sweep_over_probe_lists_groups_by_the_probe_selection(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*TINY, "probe=[gradient_line],[hessian]", "seed=0", f"hydra.sweep.dir={sweep}", "--multirun"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_analysis(str(sweep), "--wandb-mode", "disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = sweep / "analysis"
    report = (out / "report.md").read_text()
    assert "Varying config keys: `probe.name`. Grouped by: `probe.name`." in report
    assert "2 runs in 2 groups" in report
    runs = pd.read_csv(out / "runs.csv").set_index("probe.name")
    # which folder ran which probe, from the files each probe writes
    hessian, gradient_line = Path(runs.loc["hessian", "job_dir"]), Path(runs.loc["gradient_line", "job_dir"])
    assert (hessian / "hessian.csv").exists() and not (hessian / "landscape.csv").exists()
    assert (gradient_line / "landscape.csv").exists() and not (gradient_line / "hessian.csv").exists()
    shares = pd.read_csv(out / "shares.csv").set_index("probe.name")
    assert list(shares["runs"]) == [1, 1] and list(shares["loss_le_1e-9_n"]) == [1, 1]  # seed 0 once per group
    assert list(shares["phi_dd_pos_0p1_n"]) == [1, 0]  # probed along the gradient only in its own group
    assert "duplicate" not in (out / "problems.txt").read_text()


def first_epoch_at(history: pd.DataFrame, loss: float) -> float:
    reached = history.loc[history["loss"] <= loss, "epoch"]
    return float(reached.iloc[0]) if len(reached) else float("inf")


@pytest.mark.slow
@pytest.mark.guards("mixed")
def test_jobs_caught_mid_write_feed_no_statistic(tmp_path):
    """A sweep analysed while it runs: job 1 has written history.csv and is probing (killed there,
    so that its files stay as they were), without summary.json; then with a summary of status
    running. Its group has no completed run: every statistic of it is empty."""
    sweep = tmp_path / "sweep"
    samples = "probe.hessian.trace_samples=10,200000"  # job 1 probes for minutes
    args = [*TINY, "trainer.epochs=300", "probe=[hessian]", samples, f"hydra.sweep.dir={sweep}", "--multirun"]
    running = start_cli(*args, cwd=tmp_path, log=tmp_path / "sweep.log")
    try:
        wait_for(lambda: (sweep / "1" / "history.csv").exists(), what="job 1 to write its history")
    finally:
        running.kill()
        running.wait()
    assert summary(sweep / "0")["status"] == "completed" and not (sweep / "1" / "summary.json").exists()
    completed = pd.read_csv(sweep / "0" / "history.csv")
    for caught in ("no summary", "status running"):
        if caught == "status running":
            (sweep / "1" / "summary.json").write_text(json.dumps({"status": "running", "seed": 0}))
        out = tmp_path / caught.replace(" ", "_")
        result = run_analysis(str(sweep), "--out", str(out), "--wandb-mode", "disabled", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        table = pd.read_csv(out / "summary.csv").set_index("probe.hessian.trace_samples")
        assert list(table.loc[10, ["runs", "completed"]]) == [1, 1]
        assert list(table.loc[200000, ["runs", "missing"]]) == [1, 1]
        for loss in (1e-3, 1e-6, 1e-9):
            label = f"epochs_to_{loss:.0e}".replace("e-0", "e-")
            assert table.loc[10, f"{label}_median"] == first_epoch_at(completed, loss)
        statistics = table.drop(columns=["runs", "completed", "diverged", "failed", "interrupted", "missing"])
        assert statistics.loc[200000].isna().all(), statistics.loc[200000].dropna()
        runs = pd.read_csv(out / "runs.csv").set_index("job_dir")
        assert runs.filter(like="epochs_to_").loc[str(sweep / "1")].isna().all()
        assert list(pd.read_csv(out / "metrics.csv")["probe.hessian.trace_samples"]) == [10]


def without_dac_override() -> list[str]:
    """A command prefix under which folder permissions hold: root reads every folder unless it drops
    the capabilities that let it (a non-root user needs none)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("root without setpriv reads folders whatever their permissions")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def damage_multirun_yaml(sweep: Path, content: bytes | None) -> Path:
    path = sweep / "multirun.yaml"
    path.unlink()
    if content is None:
        path.mkdir()  # a folder where the file belongs
    else:
        path.write_bytes(content)
    return path


UNREADABLE_SWEEPS = {  # case: (multirun.yaml's new content, None: a folder; the end of the one-line error)
    "not YAML": (b"hydra: [unclosed\n", "multirun.yaml: while parsing a flow sequence"),
    "not UTF-8": (b"\xff\xfe\x00garbage", "multirun.yaml: 'utf-8' codec can't decode byte 0xff in position 0"),
    "a folder": (None, "multirun.yaml: Is a directory"),
    "no sweep's": (b"just: words\n", "multirun.yaml: expected Hydra's multirun config"),
    "a bad override": (b"hydra:\n  overrides:\n    task: ['seed=0,,1']\n", "multirun.yaml: Error parsing override"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["no read permission", *UNREADABLE_SWEEPS])
def test_an_unreadable_sweep_is_named_and_nothing_is_written(case, real_sweep, tmp_path):
    sweep = copy_sweep(real_sweep, tmp_path / "sweep")
    if case in UNREADABLE_SWEEPS:
        content, ending = UNREADABLE_SWEEPS[case]
        damage_multirun_yaml(sweep, content)
        named = str(sweep / ending)
    else:
        named = f"cannot read the sweep folder {sweep}: Permission denied"
    before = tree(sweep)
    prefix = []
    if case == "no read permission":
        prefix = without_dac_override()
        sweep.chmod(0)
    try:
        result = run_analysis(str(sweep), "--out", str(tmp_path / "out"), cwd=tmp_path, prefix=tuple(prefix))
    finally:
        sweep.chmod(0o755)
    error = one_line_error(result)
    assert named in error and "--out" not in error, error
    assert not (tmp_path / "out").exists() and tree(sweep) == before


@pytest.mark.slow
@pytest.mark.parametrize("inside", ["0", "0/analysis", "0/wandb/report"])
@pytest.mark.guards("foreign files deleted")
def test_out_inside_a_job_folder_is_refused(inside, real_sweep, tmp_path):
    sweep = copy_sweep(real_sweep, tmp_path / "sweep")
    before = tree(tmp_path)
    error = one_line_error(run_analysis(str(sweep), "--out", str(sweep / inside), cwd=tmp_path))
    assert f"--out {sweep / inside} is inside the job folder {sweep / '0'}" in error and "allowed: " in error
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_a_job_folder_analysed_alone_gets_its_report_beside_it(real_sweep, tmp_path):
    sweep = copy_sweep(real_sweep, tmp_path / "sweep")
    job = sweep / "1"
    before = tree(job)
    result = run_analysis(str(job), cwd=tmp_path)  # the default --out and the default W&B run (offline)
    assert result.returncode == 0, result.stderr
    assert tree(job) == before and len(offline_runs(job)) == 1
    out = sweep / "1-analysis"
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["job_dir"]) == [str(job)] and list(runs["seed"]) == [summary(job)["seed"]]
    assert len(offline_runs(out)) == 1  # the analysis's own W&B run


def result_files(job: Path) -> list[str]:
    """What the job side writes into summary.json as `files`: the result files and the W&B run folder."""
    return sorted(p.name for p in job.glob("*.csv")) + ["summary.json"] + [f"wandb/{offline_runs(job)[0].name}"]


@pytest.mark.slow
@pytest.mark.guards("lost")
def test_a_finished_job_whose_files_were_deleted_counts_as_missing(real_sweep, tmp_path):
    """Job 0: history.csv deleted (a summary without `files`: history.csv is required). Job 1: its
    summary lists its files and its wandb/ folder was deleted. Job 2 lists its files, all there."""
    sweep = copy_sweep(real_sweep, tmp_path / "sweep")
    for n in ("1", "2"):
        (sweep / n / "summary.json").write_text(json.dumps(summary(sweep / n) | {"files": result_files(sweep / n)}))
    gone_run = f"wandb/{offline_runs(sweep / '1')[0].name}"
    (sweep / "0" / "history.csv").unlink()
    shutil.rmtree(sweep / "1" / "wandb")
    result = run_analysis(str(sweep), "--wandb-mode", "disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = pd.read_csv(sweep / "analysis" / "runs.csv").set_index("job_dir")
    assert list(runs["status"]) == ["missing", "missing", "completed"]
    assert runs.loc[str(sweep / "2"), "final_loss"] == summary(sweep / "2")["final_loss"]
    problems = (sweep / "analysis" / "problems.txt").read_text().splitlines()
    assert f"{sweep / '0'} is completed but files it wrote are gone (history.csv); counted as missing" in problems
    assert f"{sweep / '1'} is completed but files it wrote are gone ({gone_run}); counted as missing" in problems
    assert len(problems) == 2
    table = pd.read_csv(sweep / "analysis" / "summary.csv").iloc[0]
    assert (table["completed"], table["missing"]) == (1, 2)
    assert table["final_loss_median"] == summary(sweep / "2")["final_loss"]


@pytest.mark.slow
def test_the_newest_sweep_is_found_at_any_depth_by_its_multirun_yaml(real_sweep, tmp_path):
    """`make analysis` after `python -m nesterov_landscape ... hydra.sweep.dir=multirun/my-sweep --multirun`:
    the sweep one level down, written last, beats two older sweeps at multirun/<date>/<time> (one of
    them later by name) and a newer multirun.yaml inside one of its job folders, which is not a sweep of its own."""
    multirun = tmp_path / "multirun"
    newest = copy_sweep(real_sweep, multirun / "my-sweep")
    (newest / "multirun.yaml").touch()
    an_hour_ago = time.time() - 3600
    for older in ("2026-01-01/09-00-00", "zz-by-name/10-00-00"):
        write_multirun_yaml(multirun / older, ["seed=0"])
        write_job(multirun / older / "0", job_config(8, 0), ["seed=0"], completed_summary(1e-10, 1.0, 1.0))
        os.utime(multirun / older / "multirun.yaml", (an_hour_ago, an_hour_ago))
    write_multirun_yaml(newest / "0" / "inner", ["seed=0"])
    in_an_hour = time.time() + 3600
    os.utime(newest / "0" / "inner" / "multirun.yaml", (in_an_hour, in_an_hour))
    result = run_analysis("--wandb-mode", "disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"report: {Path('multirun/my-sweep/analysis/report.md')}")
    runs = pd.read_csv(newest / "analysis" / "runs.csv")
    assert sorted(runs["seed"]) == [0, 1, 2] and (runs["status"] == "completed").all()
    assert [p.parent.relative_to(multirun) for p in multirun.rglob("analysis")] == [Path("my-sweep")]


@pytest.mark.slow
@pytest.mark.guards("duplicated", "lost")
def test_of_duplicate_jobs_the_most_finished_is_kept(real_sweep, tmp_path):
    """Sweep B (seed=0,1, job 1 failed: its history.csv cannot be written) analysed before a copy of
    the real sweep A (seed=0,1,2, all completed): each config once, the completed job kept."""
    b, a = tmp_path / "b", copy_sweep(real_sweep, tmp_path / "a")
    (b / "1" / "history.csv").mkdir(parents=True)  # in a folder it did not make, so: overwrite
    run_cli(*TINY, "seed=0,1", "trainer.overwrite=true", f"hydra.sweep.dir={b}", "--multirun", cwd=tmp_path)
    assert summary(b / "0")["status"] == "completed" and summary(b / "1")["status"] == "failed"
    result = run_analysis(str(b), str(a), "--out", str(tmp_path / "out"), "--wandb-mode", "disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("job_dir")
    kept = runs[~runs["duplicate"]]
    assert sorted(kept.index) == sorted(str(job) for job in (b / "0", a / "1", a / "2"))
    assert (kept["status"] == "completed").all() and sorted(kept["seed"]) == [0, 1, 2]
    problems = (tmp_path / "out" / "problems.txt").read_text()
    assert f"duplicate job {b / '1'}: same config and seed as {a / '1'} (kept that one)" in problems
    assert f"duplicate job {a / '0'}: same config and seed as {b / '0'} (kept that one)" in problems
    assert pd.read_csv(tmp_path / "out" / "summary.csv").iloc[0][["runs", "completed", "failed"]].tolist() == [3, 3, 0]
