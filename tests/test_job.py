"""`task(cfg)` end to end in this process: the real Hydra config, real files, W&B offline."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import wandb

from nesterov_landscape.config import validate
from nesterov_landscape.problem import setup_problem
from nesterov_landscape.stack import train_jobs
from nesterov_landscape.job import task

from .helpers import CONF, TINY, as_module, compose_job


def read_csv(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def run_job(tmp_path: Path, *overrides: str) -> tuple[dict, Path]:
    out = tmp_path / "job"
    summary = task(compose_job([*TINY, *overrides], out))
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
    summary = task(compose_job([option, *TINY], out))
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
    cpu = on_disk["versions"]["cpu"]  # beside the versions: float32 magnitudes depend on the CPU too
    cpuinfo = Path("/proc/cpuinfo")
    assert cpu and (not cpuinfo.exists() or cpu in cpuinfo.read_text())
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
    cfg = compose_job([*TINY, "trainer.overwrite=true"], out)  # allowed into a folder it did not make
    (out / "history.csv").mkdir()  # a real failure: the history file cannot be written
    with pytest.raises(OSError):
        task(cfg)
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


def nanmin(values):
    kept = [v for v in values if not math.isnan(v)]
    return min(kept) if kept else math.nan


def test_summary_minima_equal_the_minima_recomputed_from_landscape_csv(tmp_path):
    """float64 job, mu_cutoff 0.05: every landscape scalar of summary.json is recomputed from the rows of
    landscape.csv; the phi'' column is the central difference of the phi column (h = t_step = 0.01,
    so t +- h are the neighbouring rows), mu follows its formula from the phi and phi' columns and is
    empty exactly where |t| < 0.05."""
    summary, out = run_job(
        tmp_path, "trainer.precision=float64", "probe.gradient_line.mu_cutoff=0.05", "probe.gradient_line.exact=true"
    )
    rows = read_csv(out / "landscape.csv")
    assert len(rows) == 201 and {r["epoch"] for r in rows} == {20}
    t = [r["t"] for r in rows]
    assert t == [k * 0.01 for k in range(-100, 101)]  # the multiples of t_step
    h = 0.01
    for prev, row, nxt in zip(rows, rows[1:], rows[2:]):
        second_difference = (nxt["phi"] - 2 * row["phi"] + prev["phi"]) / h**2
        assert row["phi_dd"] == pytest.approx(second_difference, rel=1e-9, abs=1e-12), row["t"]
        assert row["phi_d"] == pytest.approx((nxt["phi"] - prev["phi"]) / (2 * h), rel=1e-11, abs=1e-14)
    assert summary["inf_phi"] == 0
    for row in rows:
        if abs(row["t"]) < 0.05 - 1e-12:
            assert math.isnan(row["mu"]) and math.isnan(row["mu_exact"]), row["t"]
            continue
        mu = 2 * (row["t"] * row["phi_d"] - row["phi"]) / row["t"] ** 2
        mu_exact = 2 * (row["t"] * row["phi_d_exact"] - row["phi"]) / row["t"] ** 2
        assert row["mu"] == pytest.approx(mu, rel=1e-10, abs=1e-12)
        assert row["mu_exact"] == pytest.approx(mu_exact, rel=1e-10, abs=1e-12)
    at_0 = rows[100]
    assert at_0["t"] == 0 and at_0["phi"] == pytest.approx(summary["final_loss"], rel=1e-12)
    assert summary["phi_dd_at_0"] == pytest.approx(at_0["phi_dd"], rel=1e-12)
    assert summary["phi_dd_exact_at_0"] == pytest.approx(at_0["phi_dd_exact"], rel=1e-10)  # HVP vs autograd in t
    assert summary["probe_grad_norm"] == pytest.approx(at_0["phi_d_exact"], rel=1e-12)  # phi'(0) = |grad L|
    for r in (0.1, 0.5, 1.0):
        inside = [row for row in rows if abs(row["t"]) <= r + 1e-12]
        key = f"{r:g}".replace(".", "p")
        assert summary[f"phi_dd_min_{key}"] == min(row["phi_dd"] for row in inside)
        assert summary[f"mu_min_{key}"] == nanmin([row["mu"] for row in inside])
        assert summary[f"mu_exact_min_{key}"] == nanmin([row["mu_exact"] for row in inside])


def retrained_params(cfg, summary):
    """The job's final weights, trained again from its config as the job trains (a stack of one); equal
    to the job's own (its final loss is checked bit for bit)."""
    config = validate(cfg, cuda_available=False)
    problem = setup_problem(config)
    (result,) = train_jobs([config])
    assert result.history[-1]["loss"] == summary["final_loss"]
    return problem, result.params


def test_hessian_probe_of_a_job_against_a_dense_hessian(tmp_path):
    """The job's network has 113 weights and the default 60 Lanczos steps: lambda_max, the top
    eigenvalues, phi''(0) / lambda_max, phi''(0) = g^T H g and the trace, against the dense Hessian at the
    job's final weights."""
    out = tmp_path / "job"
    cfg = compose_job([*TINY, "trainer.precision=float64", "probe=[gradient_line,hessian]"], out)
    summary = task(cfg)
    problem, params = retrained_params(cfg, summary)
    assert problem.shape.n_params == 113 and summary["hessian_lanczos_steps"] == 60
    loss = problem.loss_in(torch.float64)
    dense = torch.autograd.functional.hessian(loss, params)
    eigenvalues = torch.linalg.eigvalsh(dense).flip(0)
    assert summary["hessian_lambda_max"] == pytest.approx(eigenvalues[0].item(), rel=1e-10)
    on_disk = [r["eigenvalue"] for r in read_csv(out / "hessian.csv")]
    torch.testing.assert_close(torch.tensor(on_disk, dtype=torch.float64), eigenvalues[:5], rtol=1e-8, atol=0)
    w = params.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(w), w)
    g = grad / grad.norm()
    curvature = (g @ dense @ g).item()
    assert summary["phi_dd_exact_at_0"] == pytest.approx(curvature, rel=1e-10)
    assert summary["phi_dd_over_lambda_max"] == pytest.approx(curvature / eigenvalues[0].item(), rel=1e-10)
    assert abs(summary["hessian_trace"] - dense.trace().item()) < 3 * summary["hessian_trace_std_error"]


def test_a_jobs_finite_differences_with_h_off_the_grid(tmp_path):
    """h = 0.003 with t_step = 0.1: phi at t +- h is off the grid and evaluated apart. Each row's
    phi'' equals the second difference of phi at t - h, t, t + h recomputed here with the torch.nn
    network at the job's final weights along its normalized gradient."""
    out = tmp_path / "job"
    overrides = ["trainer.precision=float64", "probe.gradient_line.t_step=0.1", "probe.gradient_line.h=0.003"]
    cfg = compose_job([*TINY, *overrides], out)
    summary = task(cfg)
    problem, params = retrained_params(cfg, summary)
    loss = problem.loss_in(torch.float64)
    w = params.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(w), w)
    g = grad / grad.norm()
    x, y = problem.data.x, problem.data.y

    def phi(t: float) -> float:
        reference = as_module(problem.shape, problem.config.model.activation, params + t * g)
        return (torch.nn.functional.mse_loss(reference(x).squeeze(-1), y) / 2).item()

    assert phi(0.0) == pytest.approx(summary["final_loss"], rel=1e-12)
    rows = read_csv(out / "landscape.csv")
    assert [round(r["t"], 12) for r in rows] == [round(k * 0.1, 12) for k in range(-10, 11)]
    h = 0.003
    for row in rows:
        t = row["t"]
        assert row["phi"] == pytest.approx(phi(t), rel=1e-12), t
        assert row["phi_dd"] == pytest.approx((phi(t + h) - 2 * phi(t) + phi(t - h)) / h**2, rel=1e-6, abs=1e-9), t


def test_final_history_row_when_epochs_is_not_a_multiple_of_log_every(tmp_path):
    """epochs 23, log_every 5: rows at 0, 5, ..., 20 and 23, each equal to the row of the same epoch of
    a job that logs every epoch; final_loss is the row at 23."""
    summary, out = run_job(tmp_path / "a", "trainer.epochs=23", "probe=none")
    dense, dense_out = run_job(tmp_path / "b", "trainer.epochs=23", "trainer.log_every=1", "probe=none")
    history = read_csv(out / "history.csv")
    every_epoch = {row["epoch"]: row for row in read_csv(dense_out / "history.csv")}
    assert [row["epoch"] for row in history] == [0, 5, 10, 15, 20, 23]
    assert sorted(every_epoch) == list(range(24))
    for row in history:
        assert row == every_epoch[row["epoch"]]
    assert summary["epochs_run"] == 23 and summary["final_loss"] == every_epoch[23]["loss"]
    assert summary["final_grad_norm"] == every_epoch[23]["grad_norm"]


def reference_history(problem, loss_kind, make_optimizer, epochs, log_every):
    """Full-batch training of the job's network rebuilt from torch.nn layers, with a torch.optim
    optimizer and torch.nn.functional.mse_loss: an implementation independent of the harness's."""
    model = as_module(problem.shape, problem.config.model.activation, problem.init)
    optimizer = make_optimizer(model.parameters())
    x, y = problem.data.x, problem.data.y
    rows = []
    for epoch in range(epochs + 1):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), y)
        if loss_kind == "half_mse":
            loss = loss / 2
        loss.backward()
        if epoch % log_every == 0 or epoch == epochs:
            grad_norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
            rows.append({"epoch": epoch, "loss": loss.item(), "grad_norm": grad_norm})
        if epoch < epochs:
            optimizer.step()
    return rows


@pytest.mark.parametrize(
    "overrides,loss_kind,make_optimizer",
    [
        (["loss=mse"], "mse", lambda p: torch.optim.SGD(p, lr=0.005, momentum=0.99, nesterov=True)),
        (
            ["optimizer=adam", "optimizer.lr=0.01", "optimizer.weight_decay=0.1"],
            "half_mse",
            lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
        ),
        (
            ["optimizer=adam", "optimizer.lr=0.01", "optimizer.weight_decay=0.1", "loss=mse"],
            "mse",
            lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
        ),
    ],
    ids=["mse-nag", "adam-weight_decay", "mse-adam-weight_decay"],
)
def test_job_history_equals_torch_nn_and_torch_optim(overrides, loss_kind, make_optimizer, tmp_path):
    """loss=mse and optimizer.weight_decay through a float64 job: every history column equals an
    independent torch.nn + torch.optim + mse_loss run from the job's data and initial weights."""
    out = tmp_path / "job"
    cfg = compose_job([*TINY, "trainer.precision=float64", "probe=none", "trainer.epochs=40", *overrides], out)
    summary = task(cfg)
    problem = setup_problem(validate(cfg, cuda_available=False))
    expected = reference_history(problem, loss_kind, make_optimizer, epochs=40, log_every=5)
    history = read_csv(out / "history.csv")
    assert [row["epoch"] for row in history] == [row["epoch"] for row in expected]
    for ours, reference in zip(history, expected):
        assert ours["loss"] == pytest.approx(reference["loss"], rel=1e-10)
        assert ours["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-9)
    assert history[-1]["loss"] < 0.9 * history[0]["loss"]  # it trained
    assert summary["optimizer_hyperparams"].get("weight_decay", 0.0) == (0.1 if "adam" in overrides[0] else 0.0)
