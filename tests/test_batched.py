"""Stacked training gives each run what it gets alone: the numerics, and the batched launcher end to end."""

import json

import pytest
import torch

from nesterov_landscape.stack import stack_signature, train_jobs
from nesterov_landscape.numerics.lines import gradient_line, t_grid
from nesterov_landscape.probes.gradient_line import columns
from nesterov_landscape.problem import setup_problem

from .helpers import TINY, alone, configs, run_cli

# float64 with few epochs: stacking only reassociates sums inside the batched matmuls
RTOL = 1e-10


@pytest.mark.parametrize("optimizer", ["nag", "heavy_ball", "gd", "nag_scheme", "agnes", "adam"])
def test_stacked_runs_equal_separate_runs(optimizer):
    jobs = configs(
        [f"optimizer={optimizer}", "seed=0"],
        [f"optimizer={optimizer}", "seed=1"],
        [f"optimizer={optimizer}", "seed=2", "data.seed=5"],
    )
    assert len({stack_signature(c) for c in jobs}) == 1
    for stacked, config in zip(train_jobs(jobs), jobs):
        single = alone(config)
        assert stacked.status == single.status and stacked.epochs_run == single.epochs_run
        assert [r["epoch"] for r in stacked.history] == [r["epoch"] for r in single.history]
        torch.testing.assert_close(
            torch.tensor([r["loss"] for r in stacked.history]),
            torch.tensor([r["loss"] for r in single.history]),
            rtol=RTOL,
            atol=0,
        )
        torch.testing.assert_close(stacked.params, single.params, rtol=RTOL, atol=1e-14)


def test_a_diverging_member_does_not_poison_the_others():
    jobs = configs(
        ["optimizer.lr=0.005", "seed=0", "trainer.epochs=200"],
        ["optimizer.lr=10", "seed=0", "trainer.epochs=200"],
        ["optimizer.lr=0.01", "seed=1", "trainer.epochs=200"],
    )
    stacked = train_jobs(jobs)
    assert [r.status for r in stacked] == ["completed", "diverged", "completed"]
    for result, config in zip(stacked, jobs):
        single = alone(config)
        assert result.status == single.status and result.epochs_run == single.epochs_run
        torch.testing.assert_close(
            torch.tensor([r["loss"] for r in result.history]),
            torch.tensor([r["loss"] for r in single.history]),
            rtol=RTOL,
            atol=0,
            equal_nan=True,
        )


def test_only_shape_keeping_values_stack():
    base = configs([])[0]
    assert stack_signature(base) == stack_signature(
        configs(["seed=3", "optimizer.lr=0.1", "data.label_noise=0.1", "probe=[hessian]", "logger.mode=disabled"])[0]
    )
    for different in (
        ["model.width=9"],
        ["model.depth=3"],
        ["optimizer=heavy_ball"],
        ["trainer.epochs=21"],
        ["trainer.precision=float32"],
    ):
        assert stack_signature(configs(different)[0]) != stack_signature(base), different
    for alone_only in (
        ["data.batch_size=4"],
        ["trainer.noise=additive", "trainer.noise_sigma=0.1"],
        ["probe.gradient_line.every=5"],
    ):
        assert stack_signature(configs(alone_only)[0]) is None


@pytest.mark.slow
def test_batched_launcher_gives_each_job_what_a_separate_job_gets(tmp_path):
    sweep = [
        "trainer.precision=float64",
        "trainer.epochs=100",
        "probe.gradient_line.t_step=0.25",
        "seed=0,1",
        "optimizer.lr=0.005,10",
        "data.batch_size=null,8",
    ]
    results = {}
    for launcher in ("basic", "batched"):
        out = tmp_path / launcher
        result = run_cli(
            *TINY, *sweep, f"hydra/launcher={launcher}", f"hydra.sweep.dir={out}", "--multirun", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        results[launcher] = [json.loads((out / str(n) / "summary.json").read_text()) for n in range(8)]
        for n in range(8):
            job = out / str(n)
            assert (job / ".hydra" / "config.yaml").exists() and (job / "history.csv").exists()
            assert list(job.glob("wandb/offline-run-*/run-*.wandb"))
    for separate, batched in zip(results["basic"], results["batched"]):
        assert batched["config"] == separate["config"] and batched["status"] == separate["status"]
        if separate["status"] == "completed":
            assert batched["final_loss"] == pytest.approx(separate["final_loss"], rel=RTOL)
            assert batched["phi_dd_at_0"] == pytest.approx(separate["phi_dd_at_0"], rel=1e-8)
    stacked = [b["stacked_with"] for b in results["batched"]]
    assert stacked.count(3) == 4 and stacked.count(0) == 4  # the full-batch jobs stack, mini-batch ones run alone


def test_stacked_probe_equals_the_probe_of_each_run():
    grid = "probe.gradient_line.t_step=0.25 trainer.epochs=200".split()
    jobs = configs(["seed=0", *grid], ["seed=1", *grid], ["seed=2", "optimizer.lr=10", *grid])
    results = train_jobs(jobs)
    assert results[2].status == "diverged" and not results[2].stacked_probes
    for result, config in zip(results[:2], jobs[:2]):
        problem, line = setup_problem(config), config.probe["gradient_line"]
        grid_t = t_grid(line.t_min, line.t_max, line.t_step)
        alone = gradient_line(
            problem.loss_in(problem.dtype), result.params, grid_t, line.h, line.inf_phi, line.mu_cutoff, line.exact
        )
        for name, values in columns(result.stacked_probes["gradient_line"]).items():
            torch.testing.assert_close(values, columns(alone)[name], rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.slow
def test_agnes_runs_with_different_L_each_get_their_own_coefficients(tmp_path):
    """AGNES computes its step sizes and momentum from L, mu and sigma. Two values of L share one
    stack (a stack's differing values are one per run), and each job equals the same job run
    alone by the basic launcher; a stack that took the first run's L would fail the second."""
    sweep = [*TINY, "trainer.precision=float64", "trainer.epochs=300", "probe=none", "optimizer=agnes"]
    sweep += ["optimizer.L=5,20", "optimizer.mu=0.5", "optimizer.sigma=0.5"]
    results = {}
    # one process: one stack of both (two workers would take a stack of one each)
    for launcher, args in (("basic", []), ("batched", ["hydra.launcher.n_jobs=1"])):
        out = tmp_path / launcher
        launch = [f"hydra/launcher={launcher}", *args, f"hydra.sweep.dir={out}", "--multirun"]
        result = run_cli(*sweep, *launch, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        results[launcher] = [json.loads((out / str(n) / "summary.json").read_text()) for n in range(2)]
    assert [s["stacked_with"] for s in results["batched"]] == [1, 1]
    for separate, batched in zip(results["basic"], results["batched"]):
        assert batched["optimizer_hyperparams"] == separate["optimizer_hyperparams"]
        assert batched["final_loss"] == pytest.approx(separate["final_loss"], rel=RTOL)
    etas = [s["optimizer_hyperparams"]["correction"] for s in results["basic"]]
    assert etas == pytest.approx([1 / (5 * 1.25), 1 / (20 * 1.25)], rel=1e-15)  # eta = 1 / (L (1 + sigma^2))
    assert results["basic"][0]["final_loss"] != pytest.approx(results["basic"][1]["final_loss"], rel=1e-3)
