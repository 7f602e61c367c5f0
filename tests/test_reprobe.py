"""Kept weights and re-probing (nesterov_landscape/weights.py, nesterov_landscape/reprobe/): a job's
own probes re-run at its weights give its files and summary numbers bit for bit, alone and stacked;
the weights file never runs code; bad input is one line naming the folder while the other jobs go
on; a killed re-probe is finished by the same command."""

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pandas
import pytest
import safetensors.torch
import torch

from multirun_analysis.__main__ import main as analyse
from nesterov_landscape import limits, weights
from nesterov_landscape.config import validate
from nesterov_landscape.job import task
from nesterov_landscape.job_files import MANIFEST, WEIGHTS_FILE, recorded
from nesterov_landscape.problem import setup_problem
from nesterov_landscape.stack import train_jobs
from nesterov_landscape.reprobe.__main__ import main as reprobe
from nesterov_landscape.summary_schema import DESCRIPTION

from .helpers import ROOT, TINY, compose_config, compose_job, run_cli
from .test_faults import wait_for, wandb_state
from .wandb_offline import records

# The paper's network, briefly trained: at this size MKL gives a lone run's gradient other last bits
# than a stack's, so a re-probe that ran a probe another way than its job did would not match.
PAPER_SHORT = [
    "experiment=gupta2025_fig3",
    "trainer.epochs=50",
    "probe=[gradient_line,hessian,random_line]",
    "probe.gradient_line.t_step=0.05",
    "probe.hessian.lanczos_steps=8",
    "probe.hessian.trace_samples=4",
    "probe.random_line.directions=2",
    "probe.random_line.t_step=0.25",
]
PROBE_FILES = ("landscape.csv", "hessian.csv", "landscape_random.csv")
NOT_COMPARED = {*DESCRIPTION, "probe_seconds", "reprobe"}  # the run's record and timing, not its numbers


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def train(folder: Path, *overrides: str) -> dict:
    return task(compose_job(list(overrides), folder))


def assert_reprobe_equals_job(job: Path, name: str) -> None:
    probed = job / "reprobe" / name
    for file in PROBE_FILES:
        assert (probed / file).exists() == (job / file).exists(), file
        if (job / file).exists():
            assert (probed / file).read_bytes() == (job / file).read_bytes(), f"{job}: {file}"
    theirs, ours = summary(job), summary(probed)
    assert ours["status"] == "completed" and ours["config"] == theirs["config"]
    assert {k: v for k, v in ours.items() if k not in NOT_COMPARED} == {
        k: v for k, v in theirs.items() if k not in NOT_COMPARED
    }


# --- the weights a job keeps ---


def test_a_completed_job_keeps_its_final_weights_before_its_summary(tmp_path):
    job = tmp_path / "job"
    train(job, *TINY, "trainer.precision=float64")
    entries = recorded(job)
    assert entries.index(WEIGHTS_FILE) < entries.index("summary.json")  # write-ahead: recorded as written
    assert WEIGHTS_FILE in summary(job)["files"]
    config = validate(compose_config([*TINY, "trainer.precision=float64"]), cuda_available=False)
    problem = setup_problem(config)
    stored = weights.load(job, problem)
    assert stored.weights.dtype == torch.float64 and stored.epoch == 20
    assert torch.equal(stored.weights, train_jobs([config])[0].params)  # the trained weights, bit for bit
    size = (job / WEIGHTS_FILE).stat().st_size
    assert problem.shape.n_params * 8 < size <= limits.weights_disk_bytes(config)


def test_no_weights_without_save_weights_or_after_divergence(tmp_path):
    train(tmp_path / "off", *TINY, "trainer.save_weights=false")
    train(tmp_path / "diverged", *TINY, "optimizer.lr=10", "trainer.epochs=200")
    assert summary(tmp_path / "diverged")["status"] == "diverged"
    for job in ("off", "diverged"):
        assert not (tmp_path / job / WEIGHTS_FILE).exists() and WEIGHTS_FILE not in recorded(tmp_path / job)


def test_the_disk_for_the_weights_is_counted_before_training():
    config = validate(compose_config(["experiment=gupta2025_fig3"]), cuda_available=False)
    assert limits.weights_disk_bytes(config) == 11_831 * 4 + limits.WEIGHTS_HEADER_BYTES  # 47 KB in float32
    assert limits.disk_error(config, free_bytes=1e9) is None
    assert "trainer.save_weights=false" in limits.disk_error(config, free_bytes=10_000)
    config.trainer.save_weights = False
    assert limits.disk_error(config, free_bytes=0) is None


def test_the_weights_reach_wandb_as_an_artifact_only_when_asked(tmp_path):
    for asked in (False, True):
        job = tmp_path / str(asked)
        train(job, *TINY, f"logger.log_weights={str(asked).lower()}")
        (run,) = job.glob("wandb/offline-run-*")
        logged = [r["artifact"] for r in records(run) if r.get("type") == "artifact"]
        assert len([a for a in logged if a["type"] == "weights"]) == asked, logged  # the tables are artifacts too


def test_a_weights_file_carrying_a_pickle_payload_is_refused_without_running_it(tmp_path, capsys):
    job, marker = tmp_path / "job", tmp_path / "payload-ran"
    train(job, *TINY)

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for payload in (pickle.dumps(Payload()), torch_saved(Payload(), tmp_path / "saved.pt")):
        pickle_ran = subprocess.run([sys.executable, "-c", LOAD_PICKLE], input=payload, capture_output=True)
        assert pickle_ran.returncode == 0 and marker.exists()  # the payload is real: unpickling runs it
        marker.unlink()
        (job / WEIGHTS_FILE).write_bytes(payload)
        assert reprobe([str(job)]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: {job}: {WEIGHTS_FILE} is not a safetensors file")
        assert not marker.exists() and not (job / "reprobe").exists()


LOAD_PICKLE = "import io, pickle, sys, zipfile\ndata = sys.stdin.buffer.read()\n" + (
    "if data[:2] == b'PK':\n    z = zipfile.ZipFile(io.BytesIO(data))\n"
    "    data = z.read(next(n for n in z.namelist() if n.endswith('data.pkl')))\npickle.loads(data)"
)


def torch_saved(obj, path: Path) -> bytes:
    torch.save(obj, path)  # torch's own format: a zip holding the pickle
    return path.read_bytes()


def test_the_data_and_initial_weights_are_rebuilt_from_the_seeds(tmp_path, capsys):
    """Another process rebuilds the job's data and initial weights from the config in its summary:
    their hashes equal those the training process wrote beside the weights. A config changed by hand
    (another data seed, another init) is refused."""
    job = tmp_path / "job"
    train(job, *TINY)
    code = (
        "import json, sys\nfrom nesterov_landscape.config import validate_values\n"
        "from nesterov_landscape.problem import setup_problem\nfrom nesterov_landscape.weights import seeded_hashes\n"
        "config = json.load(open(sys.argv[1]))['config']\n"
        "print(json.dumps(seeded_hashes(setup_problem(validate_values(config, cuda_available=False)))))"
    )
    rebuilt = subprocess.run([sys.executable, "-c", code, str(job / "summary.json")], capture_output=True, text=True)
    header = safetensors.safe_open(job / WEIGHTS_FILE, "pt").metadata()
    assert json.loads(rebuilt.stdout) == {k: header[k] for k in ("data_sha256", "init_sha256")}
    original = (job / "summary.json").read_text()
    changes = (("data", {"seed": 12345}, "data"), ("model", {"init": "xavier_normal"}, "initial weights"))
    for key, value, what in changes:
        changed = json.loads(original)
        changed["config"][key] |= value
        (job / "summary.json").write_text(json.dumps(changed))
        assert reprobe([str(job)]) == 1
        assert f"the {what} rebuilt from the job's seeds differ" in capsys.readouterr().err
    assert not (job / "reprobe").exists()


# --- re-probing gives the job's numbers ---


def test_reprobing_a_job_with_its_own_probes_gives_its_files_and_numbers_exactly(tmp_path, capsys):
    job = tmp_path / "job"
    train(job, *PAPER_SHORT)
    assert summary(job)["stacked_probes"] == ["gradient_line"]  # a job alone is a stack of one
    assert reprobe([str(job)]) == 0
    assert "1 completed" in capsys.readouterr().out
    assert_reprobe_equals_job(job, "own")
    (run,) = (job / "reprobe" / "own").glob("wandb/offline-run-*")
    assert wandb_state(run) == "finished (exit code 0)"
    # the same command again: already done, the same W&B run
    assert reprobe([str(job)]) == 0
    assert "1 already done" in capsys.readouterr().out
    assert list((job / "reprobe" / "own").glob("wandb/offline-run-*")) == [run]


def test_new_probe_settings_and_a_retrained_job(tmp_path, capsys):
    job = tmp_path / "job"
    train(job, *TINY, "probe.gradient_line.t_step=0.25")
    args = [str(job), "probe=[gradient_line,hessian]", "probe.gradient_line.precision=float64", "--name", "f64"]
    assert reprobe(args) == 0
    probed = summary(job / "reprobe" / "f64")
    assert probed["probe_precision"] == "float64" and probed["hessian_precision"] == "float32"
    assert probed["config"]["probe"]["gradient_line"]["t_step"] == 0.25  # the job's own settings kept
    assert probed["reprobe"]["overrides"] == args[1:3]
    first_run = probed["wandb"]["id"]
    train(job, *TINY, "probe.gradient_line.t_step=0.25", "optimizer.lr=0.01", "trainer.overwrite=true")
    assert reprobe(args) == 0  # other weights now: not the same re-probe, redone in place
    assert summary(job / "reprobe" / "f64")["wandb"]["id"] != first_run
    assert len(list((job / "reprobe" / "f64").glob("wandb/offline-run-*"))) == 1
    capsys.readouterr()


@pytest.mark.slow
def test_reprobing_a_stacked_sweep_gives_each_job_its_numbers_exactly(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    launch = ["hydra/launcher=batched", "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={sweep}", "--multirun"]
    result = run_cli(*PAPER_SHORT, "seed=0,1,2", *launch, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = [sweep / str(n) for n in range(3)]
    assert all(summary(j)["stacked_with"] == 2 and summary(j)["stacked_probes"] == ["gradient_line"] for j in jobs)
    assert reprobe([str(sweep)]) == 0
    for job in jobs:
        assert_reprobe_equals_job(job, "own")
        assert summary(job / "reprobe" / "own")["wandb"]["group"] == summary(job)["wandb"]["group"]
    # one job of the stack on its own: probed stacked still (beside a copy), as its stack probed it
    assert reprobe([str(jobs[1]), "--name", "alone"]) == 0
    assert_reprobe_equals_job(jobs[1], "alone")
    capsys.readouterr()


# --- bad input: one line naming the folder; the other jobs go on ---


def test_bad_jobs_fail_one_line_each_and_the_rest_is_reprobed(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    train(sweep / "0", *TINY)
    train(sweep / "1", *TINY, "trainer.save_weights=false")
    train(sweep / "2", *TINY)
    train(tmp_path / "narrow", *TINY, "model.width=4")
    (sweep / "2" / WEIGHTS_FILE).write_bytes((tmp_path / "narrow" / WEIGHTS_FILE).read_bytes())
    train(sweep / "3", *TINY, "model.width=3")  # 28 weights: fewer than probe.hessian.top_k below
    (sweep / "4" / ".hydra").mkdir(parents=True)  # a job that never finished
    not_a_job = tmp_path / "notes"
    not_a_job.mkdir()
    overrides = ["probe=[hessian]", "probe.hessian.top_k=30", "probe.hessian.lanczos_steps=30"]
    assert reprobe([str(sweep), str(not_a_job), *overrides, "--name", "h"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    expected = {
        sweep / "1": f"no {WEIGHTS_FILE}: the job ran before weights were kept, or with trainer.save_weights=false",
        sweep / "2": f"{WEIGHTS_FILE} holds (41,) float32 weights; the job's config (model.*, trainer.precision) has",
        sweep / "3": "probe.hessian.top_k=30 is not allowed; it must be at most the number of weights, 28",
        sweep / "4": "not a job folder: no readable summary.json",
        not_a_job: "neither a job folder (with summary.json) nor a sweep folder holding job folders",
    }
    assert len(lines) == len(expected), lines
    for folder, reason in expected.items():
        assert sum(line.startswith(f"error: {folder}: {reason}") for line in lines) == 1, (folder, lines)
    assert "1 completed, 5 failed" in captured.out
    assert summary(sweep / "0" / "reprobe" / "h")["hessian_eig_30"] is not None
    for n in range(1, 5):
        assert not (sweep / str(n) / "reprobe").exists()  # nothing half-written


@pytest.mark.parametrize(
    "override,message",
    [
        ("probe.gradient_line.t_max=abc", "Value 'abc' of type 'str' could not be converted to Float"),
        ("probe.gradient_line.tmax=2", "Key 'tmax' not in 'GradientLineConfig'"),
        ("probe=[gradient_line,nope]", "unknown probe nope; allowed: gradient_line, hessian, pl, random_line"),
        ("model.width=3", "model.width=3 is not allowed: a re-probe sets probe, logger,"),
        ("probe.gradient_line.t_max=1,2", "a re-probe takes one value per key"),
    ],
)
def test_invalid_overrides_are_one_line_before_any_job(override, message, tmp_path, capsys):
    job = tmp_path / "job"
    train(job, *TINY)
    assert reprobe([str(job), override]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and message in line and line.endswith("nothing was re-probed")
    assert not (job / "reprobe").exists()


# --- resume: a killed re-probe, then the same command ---


@pytest.mark.slow
@pytest.mark.guards("lost", "duplicated")
def test_a_killed_reprobe_is_finished_by_the_same_command(tmp_path):
    sweep = tmp_path / "sweep"
    for n in range(3):
        train(sweep / str(n), *TINY, f"seed={n}")
    # a slow probe: each job's re-probe takes seconds, so the kill lands inside one
    args = [sys.executable, "-m", "nesterov_landscape.reprobe", str(sweep), "probe.gradient_line.t_step=0.0001"]
    args += ["probe.gradient_line.exact=true", "--name", "fine"]
    env = {**os.environ, "WANDB_SILENT": "true"}
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probed = [sweep / str(n) / "reprobe" / "fine" for n in range(3)]
    wait_for(lambda: (probed[0] / "summary.json").exists() and (probed[1] / MANIFEST).exists(), what="job 1")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (probed[1] / "summary.json").exists() or summary(probed[1])["status"] == "running"
    finished_before = (probed[0] / "summary.json").read_text()
    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "1 already done, 2 completed" in second.stdout
    assert (probed[0] / "summary.json").read_text() == finished_before  # not redone
    for folder in probed:
        (run,) = folder.glob("wandb/offline-run-*")  # the killed attempt's run is gone
        assert wandb_state(run) == "finished (exit code 0)" and summary(folder)["wandb"]["id"] in run.name
        assert summary(folder)["status"] == "completed" and not (folder / ".claim").exists()
        assert len((folder / "landscape.csv").read_text().splitlines()) == 20_002


def test_the_command_line_entry_point(tmp_path):
    job = tmp_path / "job"
    train(job, *TINY)
    out = subprocess.run(
        [sys.executable, "-m", "nesterov_landscape.reprobe", str(job), "probe=[hessian]"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1 jobs: 1 completed; results in <job>/reprobe/hessian/"
    assert summary(job / "reprobe" / "hessian")["wandb"]["mode"] == "offline"


# --- the analysis of a re-probe ---


@pytest.mark.slow
def test_the_analysis_reads_a_reprobe_and_leaves_out_one_of_other_weights(tmp_path, capsys):
    sweep, grid = tmp_path / "sweep", "probe.gradient_line.t_step=0.25"
    result = run_cli(*TINY, "seed=0,1", grid, f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert reprobe([str(sweep), "probe.gradient_line.precision=float64", "--name", "f64"]) == 0
    train(sweep / "1", *TINY, "seed=1", grid, "optimizer.lr=0.01", "trainer.overwrite=true")
    assert analyse([str(sweep), "--reprobe", "f64", "--wandb-mode", "disabled"]) == 0
    runs = pandas.read_csv(sweep / "analysis-reprobe-f64" / "runs.csv")
    assert list(runs["status"]) == ["completed", "missing"]  # job 1 was trained again since its re-probe
    assert runs["probe_precision"][0] == "float64" and runs["phi_dd_at_0"][0] == summary(
        sweep / "0" / "reprobe" / "f64"
    ).get("phi_dd_at_0")
    assert "trained again since" in capsys.readouterr().err
