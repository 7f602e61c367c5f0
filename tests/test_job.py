"""`train(cfg)` end to end in this process: the real Hydra config, real files, W&B offline."""

import csv
import json
import math
from pathlib import Path

import pytest
import wandb

from nesterov_landscape.train import train

from .helpers import CONF, TINY, compose_job


def read_csv(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def run_job(tmp_path: Path, *overrides: str) -> tuple[dict, Path]:
    out = tmp_path / "job"
    summary = train(compose_job([*TINY, *overrides], out))
    return summary, out


OPTIONS = [
    f"{g}={p.stem}"
    for g in ["model", "data", "optimizer", "probe", "logger", "trainer", "experiment"]
    for p in sorted((CONF / g).glob("*.yaml"))
]


@pytest.mark.parametrize("option", OPTIONS)
def test_tiny_version_of_every_option_runs(option, tmp_path):
    # Options first, then TINY, so that presets are shrunk too.
    out = tmp_path / "job"
    summary = train(compose_job([option, *TINY], out))
    assert summary["status"] == "completed" and summary["epochs_run"] == 20
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_job_files(tmp_path):
    summary, out = run_job(tmp_path, "seed=3", "probe.gradient_line.t_step=0.1")
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["final_loss"] == summary["final_loss"]
    assert on_disk["seed"] == 3 and on_disk["config"]["seed"] == 3
    assert on_disk["config"]["model"]["width"] == 8  # the resolved config, overrides applied
    assert on_disk["precision"] == "float32" and on_disk["probe_precision"] == "float32"
    assert {"torch", "numpy", "python"} <= set(on_disk["versions"])
    assert on_disk["train_seconds"] > 0 and on_disk["probe_seconds"] > 0
    assert on_disk["wandb"]["mode"] == "offline"
    history = read_csv(out / "history.csv")
    assert [r["epoch"] for r in history] == [0, 5, 10, 15, 20]
    assert history[-1]["loss"] == pytest.approx(summary["final_loss"], rel=1e-12)
    landscape = read_csv(out / "landscape.csv")
    assert [r["t"] for r in landscape][:2] == [-1.0, -0.9] and len(landscape) == 21
    assert set(landscape[0]) == {
        "epoch",
        "t",
        "phi",
        "phi_d",
        "phi_dd",
        "mu",
        "phi_d_exact",
        "phi_dd_exact",
        "mu_exact",
    }
    at_0 = next(r for r in landscape if r["t"] == 0)
    assert at_0["phi"] == pytest.approx(summary["final_loss"], rel=1e-6)
    assert math.isnan(at_0["mu"])  # below the cutoff
    assert at_0["phi_dd"] == pytest.approx(summary["phi_dd_at_0"], rel=1e-12)
    for key in ["phi_dd_exact_at_0", "phi_dd_min_0p1", "mu_min_0p1", "phi_dd_min_0p5", "mu_min_1"]:
        assert math.isfinite(summary[key]), key
    assert list(out.glob("wandb/offline-run-*/run-*.wandb"))


def test_same_seed_same_result_other_seed_other_result(tmp_path):
    a, _ = run_job(tmp_path / "a", "seed=1")
    b, _ = run_job(tmp_path / "b", "seed=1")
    c, _ = run_job(tmp_path / "c", "seed=2")
    assert a["final_loss"] == b["final_loss"] and a["data_seed"] == b["data_seed"]
    assert c["final_loss"] != a["final_loss"] and c["data_seed"] != a["data_seed"]


def test_fixed_data_seed_keeps_the_data_across_seeds(tmp_path):
    a, _ = run_job(tmp_path / "a", "seed=1", "data.seed=7")
    b, _ = run_job(tmp_path / "b", "seed=2", "data.seed=7")
    assert a["data_seed"] == b["data_seed"] == 7 and a["raw_label_std"] == b["raw_label_std"]
    assert a["model_seed"] != b["model_seed"]


def test_float64_training_and_probe_precision_are_recorded(tmp_path):
    summary, _ = run_job(tmp_path / "a", "trainer.precision=float64")
    assert (summary["precision"], summary["probe_precision"]) == ("float64", "float64")
    summary, _ = run_job(tmp_path / "b", "probe.gradient_line.precision=float64")
    assert (summary["precision"], summary["probe_precision"]) == ("float32", "float64")


def test_diverging_run_is_a_result(tmp_path):
    summary, out = run_job(tmp_path, "optimizer.lr=10", "trainer.epochs=200")
    assert summary["status"] == "diverged"
    assert summary["epochs_run"] < 200 and summary["diverged_at_epoch"] == summary["epochs_run"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["final_loss"] is None  # strict JSON: NaN/inf -> null
    history = read_csv(out / "history.csv")
    assert not math.isfinite(history[-1]["loss"]) and history[-1]["epoch"] == summary["epochs_run"]
    assert not (out / "landscape.csv").exists()


def test_no_probe(tmp_path):
    summary, out = run_job(tmp_path, "probe=none")
    assert "phi_dd_at_0" not in summary and not (out / "landscape.csv").exists()


def test_a_failing_job_records_failure_and_closes_its_wandb_run(tmp_path):
    out = tmp_path / "job"
    cfg = compose_job(TINY, out)
    (out / "history.csv").mkdir()  # a real failure: the history file cannot be written
    with pytest.raises(OSError):
        train(cfg)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "history.csv" in summary["error"]
    assert wandb.run is None  # finished, so the next job cannot append to it
    next_summary, next_out = run_job(tmp_path / "next")
    assert next_summary["wandb"]["id"] != summary["wandb"]["id"]


def test_probes_during_training_and_every_probe_in_one_job(tmp_path):
    summary, out = run_job(
        tmp_path,
        "probe=[gradient_line,random_line,hessian,pl]",
        "probe.gradient_line.every=5",
        "probe.gradient_line.t_step=0.5",
        "probe.random_line.t_step=0.5",
        "probe.random_line.directions=2",
        "probe.hessian.top_k=3",
        "probe.hessian.trace_samples=10",
    )
    landscape = read_csv(out / "landscape.csv")
    assert sorted({r["epoch"] for r in landscape}) == [0, 5, 10, 15, 20] and len(landscape) == 5 * 5
    history = read_csv(out / "history.csv")
    for row in history:  # pl_ratio = |grad L|^2 / (2 (L - 0))
        assert row["pl_ratio"] == pytest.approx(row["grad_norm"] ** 2 / (2 * row["loss"]), rel=1e-12)
    random = read_csv(out / "landscape_random.csv")
    assert sorted({r["direction"] for r in random}) == [0, 1]
    eigenvalues = [r["eigenvalue"] for r in read_csv(out / "hessian.csv")]
    assert len(eigenvalues) == 3 and eigenvalues == sorted(eigenvalues, reverse=True)
    assert summary["hessian_lambda_max"] == eigenvalues[0]
    # the curvature along the unit gradient cannot exceed the top eigenvalue
    assert summary["phi_dd_over_lambda_max"] <= 1 + 1e-4
    assert summary["final_pl_ratio"] == pytest.approx(history[-1]["pl_ratio"])


@pytest.mark.parametrize("override,steps", [("data.batch_size=5", 4), ("data.batch_size=16", 1)])
def test_minibatch_epochs(override, steps, tmp_path):
    summary, out = run_job(tmp_path, override, "probe=none")
    assert summary["steps_per_epoch"] == steps and summary["status"] == "completed"
    assert [r["epoch"] for r in read_csv(out / "history.csv")] == [0, 5, 10, 15, 20]


def test_minibatches_and_gradient_noise_are_seeded(tmp_path):
    overrides = ["data.batch_size=5", "trainer.noise=multiplicative", "trainer.noise_sigma=0.5", "probe=none"]
    a, _ = run_job(tmp_path / "a", *overrides)
    b, _ = run_job(tmp_path / "b", *overrides)
    full, _ = run_job(tmp_path / "c", "probe=none")
    assert a["final_loss"] == b["final_loss"] != full["final_loss"]


def test_effective_agnes_parameters_are_recorded(tmp_path):
    summary, _ = run_job(tmp_path, "optimizer=agnes", "optimizer.L=4", "optimizer.mu=1", "optimizer.sigma=1")
    assert summary["optimizer_hyperparams"]["correction"] == pytest.approx(1 / 8)
    assert summary["optimizer_hyperparams"]["lr"] == pytest.approx(1 / 24)


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    eager, _ = run_job(tmp_path / "eager", "trainer.precision=float64", "probe=none")
    fast, _ = run_job(tmp_path / "compiled", "trainer.precision=float64", "probe=none", "trainer.compile=true")
    assert fast["compile_seconds"] > 0 and eager["compile_seconds"] == 0
    assert fast["final_loss"] == pytest.approx(eager["final_loss"], rel=1e-10)
