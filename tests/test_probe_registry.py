"""A probe is one module and one YAML: a toy probe kept outside the repository (a module in a
nesterov_landscape_probes folder on the Python path, its YAML on Hydra's search path) runs in a real
job and in a batched sweep, and its files and summary entries equal the training's own record."""

import csv
import json
from pathlib import Path

import pytest

from nesterov_landscape.probes import PROBES, checkpoint_every, run_order

from .helpers import TINY, run_cli

TOY_MODULE = '''"""The loss at the probed weights: in toy.csv by epoch, times `scale` in the summary."""

from dataclasses import dataclass

from nesterov_landscape.numerics.constraints import at_least, positive
from nesterov_landscape.probes import ProbeOutput, Table, register


@dataclass
class ToyConfig:
    scale: float = positive()
    every: int = at_least(0)


def run(config, at):
    loss = at.loss_in(at.train_dtype)(at.weights).item()
    return ProbeOutput(
        summary={"toy_scaled_loss": config.scale * loss},
        files={"toy.csv": Table(["epoch", "loss"], [[at.epoch, loss]])},
    )


register(
    "toy",
    ToyConfig,
    run=run,
    files=("toy.csv",),
    every=lambda config: config.every,
    history=lambda config, row: {"toy_doubled_loss": 2 * row["loss"]},
)
'''
TOY_YAML = """defaults:
  - /schema/probe/toy@toy
  - _self_
toy:
  scale: 3.0
  every: 0
"""


@pytest.fixture
def toy(tmp_path):
    """The toy probe's module and YAML under tmp_path; the arguments and environment that find them."""
    (tmp_path / "nesterov_landscape_probes").mkdir()
    (tmp_path / "nesterov_landscape_probes" / "toy.py").write_text(TOY_MODULE)
    (tmp_path / "conf" / "probe").mkdir(parents=True)
    (tmp_path / "conf" / "probe" / "toy.yaml").write_text(TOY_YAML)
    return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]"], {"PYTHONPATH": str(tmp_path)}


def rows(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_a_toy_probe_runs_in_a_job_at_checkpoints_and_at_the_end(tmp_path, toy):
    args, env = toy
    job = tmp_path / "job"
    overrides = [*TINY, "trainer.precision=float64", "probe=[gradient_line,toy]", "probe.toy.every=5"]
    result = run_cli(*overrides, *args, f"hydra.run.dir={job}", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads((job / "summary.json").read_text())
    history = rows(job / "history.csv")
    # its rows: the loss at each checkpoint (0, 5, 10, 15) and at the end, as training recorded it
    toy_rows = rows(job / "toy.csv")
    assert [r["epoch"] for r in toy_rows] == [r["epoch"] for r in history] == [0, 5, 10, 15, 20]
    for ours, trained in zip(toy_rows, history):
        assert ours["loss"] == pytest.approx(trained["loss"], rel=1e-12)
    assert summary["toy_scaled_loss"] == pytest.approx(3.0 * summary["final_loss"], rel=1e-12)
    # its history column and that column's final value
    assert all(r["toy_doubled_loss"] == 2 * r["loss"] for r in history)
    assert summary["final_toy_doubled_loss"] == 2 * summary["final_loss"]
    # the job's own file, listed and recorded as such; the gradient line ran at the end only
    assert "toy.csv" in summary["files"] and "toy.csv" in (job / ".manifest").read_text().split()
    assert {r["epoch"] for r in rows(job / "landscape.csv")} == {20}


def test_a_toy_probe_config_is_checked_like_the_others(tmp_path, toy):
    args, env = toy
    job = tmp_path / "job"
    result = run_cli(*TINY, "probe=[toy]", "probe.toy.scale=-1", *args, f"hydra.run.dir={job}", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: probe.toy.scale=-1.0 is not allowed; it must be a finite number > 0"
    ]
    assert not job.exists()


@pytest.mark.slow
def test_a_toy_probe_runs_in_a_batched_sweep(tmp_path, toy):
    """Two seeds in one stack (one worker): each job's toy probe sees its own trained weights."""
    args, env = toy
    sweep = tmp_path / "sweep"
    overrides = [*TINY, "trainer.precision=float64", "probe=[toy]", "seed=0,1", "hydra/launcher=batched"]
    result = run_cli(
        *overrides, "hydra.launcher.n_jobs=1", *args, f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    finals = set()
    for n in range(2):
        summary = json.loads((sweep / str(n) / "summary.json").read_text())
        assert summary["stacked_with"] == 1
        (row,) = rows(sweep / str(n) / "toy.csv")
        last = rows(sweep / str(n) / "history.csv")[-1]
        assert row["epoch"] == last["epoch"] == 20 and row["loss"] == pytest.approx(last["loss"], rel=1e-12)
        assert summary["toy_scaled_loss"] == pytest.approx(3.0 * last["loss"], rel=1e-12)
        finals.add(last["loss"])
    assert len(finals) == 2


WORDY_MODULE = """from dataclasses import dataclass

from nesterov_landscape.probes import ProbeOutput, register


@dataclass
class WordyConfig:
    pass


register("wordy", WordyConfig, run=lambda config, at: ProbeOutput(summary={"wordy_verdict": "benign"}))
"""


def test_a_job_refuses_a_summary_entry_the_analysis_would_refuse(tmp_path, toy):
    """A word where the summary schema wants a number: the job fails, naming the entry, rather than
    write a summary that the analysis would count as missing."""
    args, env = toy
    (tmp_path / "nesterov_landscape_probes" / "wordy.py").write_text(WORDY_MODULE)
    (tmp_path / "conf" / "probe" / "wordy.yaml").write_text("wordy: {}\n")
    job = tmp_path / "job"
    result = run_cli(*TINY, "probe=[wordy]", *args, f"hydra.run.dir={job}", cwd=tmp_path, env=env)
    assert result.returncode == 1
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"].startswith("ValueError: summary entry wordy_verdict='benign': expected a number or null")


def test_probes_run_after_those_they_read_and_checkpoint_at_their_common_period():
    assert PROBES["random_line"].reads == ("gradient_line",)
    assert run_order(["random_line", "hessian", "gradient_line"]) == ["gradient_line", "random_line", "hessian"]
    assert run_order(["random_line", "hessian"]) == ["random_line", "hessian"]
    line, pl = PROBES["gradient_line"].config, PROBES["pl"].config
    assert checkpoint_every({}) == 0 and checkpoint_every({"pl": pl(inf_loss=0.0)}) == 0
    grid = dict(t_min=-1, t_max=1, t_step=0.1, h=0.01, precision=None)
    gradient_line = line(**grid, inf_phi="zero", mu_cutoff=0.01, radii=[1.0], every=6, exact=False)
    assert checkpoint_every({"gradient_line": gradient_line}) == 6
