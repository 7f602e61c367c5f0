"""Sweeps at scale through the batched launchers: job configs derived from one composition per set
of group choices equal Hydra's own, worker processes give what one process gives, the SLURM mode
runs through submitit's local executor, and a killed worker loses nothing a re-run cannot finish."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import setup_globals
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf, open_dict, read_write

from hydra_plugins.nesterov_landscape_batched.job_configs import JobConfigs

from .helpers import CONF, TINY, alone, configs, run_cli

MIXED_SWEEP = [
    ["seed=1", "optimizer=adam", "optimizer.lr=0.01"],  # a group choice and values
    ["optimizer.lr=0.02", "seed=2", "optimizer=heavy_ball", "+extra=5"],  # an appended key
    ["seed=3", "model.width=7", "probe=[gradient_line,hessian]", "~probe.gradient_line"],  # a deletion
    ["seed=4", "logger.project=p_${seed}"],  # an interpolation in a value
    ["seed=5", "hydra.sweep.subdir=${hydra.job.override_dirname}"],  # a Hydra override
    ["optimizer.lr=1", "+trainer.newkey={a: 1}"],  # an int for a float, a dict appended
    ["seed=6", "optimizer.lr=0.01"],
    ["seed=7", "optimizer.lr=0.01", "model.width=7"],
    ["seed=8", "logger.mode=online"],  # a value over one read from the environment (logger.mode's default)
]


def hydra_composed(loader, master, idx, overrides):
    """What Hydra's basic launcher and run_job make of one job: composition, job number, folder."""
    config = loader.load_sweep_config(master, overrides)
    with open_dict(config):
        config.hydra.job.id, config.hydra.job.num = idx, idx
    HydraConfig.instance().set_config(config)
    output_dir = os.path.abspath(os.path.join(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir)))
    with read_write(config.hydra):
        config.hydra.runtime.output_dir = output_dir
    HydraConfig.instance().set_config(config)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    return (
        OmegaConf.to_container(task, resolve=False),
        OmegaConf.to_container(task, resolve=True),
        OmegaConf.to_container(config.hydra, resolve=False, enum_to_str=True),
        output_dir,
    )


@pytest.mark.parametrize("wandb_mode", [None, "disabled"])
def test_derived_job_configs_equal_hydras_composition(tmp_path, monkeypatch, wandb_mode):
    """With WANDB_MODE unset and set (logger.mode's default reads it)."""
    if wandb_mode is not None:
        monkeypatch.setenv("WANDB_MODE", wandb_mode)
    setup_globals()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF)))
    master = loader.load_configuration(
        "config",
        ["hydra/launcher=batched", f"hydra.sweep.dir={tmp_path}/${{now:%H-%M-%S}}"],
        RunMode.MULTIRUN,
    )
    job_configs = JobConfigs(HydraContext(config_loader=loader, callbacks=Callbacks(master)), master)
    job_configs.check(MIXED_SWEEP)
    for idx, overrides in enumerate(MIXED_SWEEP):
        job = job_configs.job(idx, overrides)
        task, resolved, hydra, output_dir = hydra_composed(loader, master, idx, overrides)
        assert (job.task, job.resolved, job.hydra, job.output_dir) == (task, resolved, hydra, output_dir), overrides
        folder = job_configs.job_folder(idx, overrides)  # what the sweep's check of folders uses
        assert (folder.folder, folder.subdir, folder.resolved()) == (output_dir, hydra["sweep"]["subdir"], resolved)
    # one composition per set of group choices, however many jobs share it
    assert len(job_configs.templates) == 5
    # and jobs derived from it in microseconds: all but the job with a Hydra override (its own folder
    # name) take the fast path, the environment variable in logger.mode's default notwithstanding
    assert sum(template.fast for template in job_configs.templates.values()) == 4
    # the quick parse of `key=integer` is Hydra's parse
    for override in ["seed=0", "seed=-12", "model.width=35", "seed=007", "seed=+5", "seed=1_000", "hydra.job.id=3"]:
        assert job_configs._parse(override) == job_configs.parser.parse_override(override), override


def test_a_bad_value_fails_before_any_job_runs(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        *TINY, "optimizer.lr=0.1,abc", "hydra/launcher=batched", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path
    )
    assert result.returncode != 0 and "optimizer.lr=abc" in result.stderr
    assert not [p for p in sweep.glob("*") if p.is_dir()]  # no job folder


def summaries(sweep, n):
    return [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(n)]


def histories(sweep, n):
    return [list(csv.DictReader((sweep / str(i) / "history.csv").open())) for i in range(n)]


@pytest.mark.slow
def test_worker_processes_give_what_one_process_gives(tmp_path):
    sweep_args = [*TINY, "trainer.precision=float64", "trainer.epochs=200", "seed=0,1,2", "optimizer.lr=0.005,0.02,10"]
    runs = {}
    for n_jobs in (1, 2):
        sweep = tmp_path / f"n{n_jobs}"
        result = run_cli(
            *sweep_args,
            "hydra/launcher=batched",
            f"hydra.launcher.n_jobs={n_jobs}",
            f"hydra.sweep.dir={sweep}",
            "--multirun",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        runs[n_jobs] = summaries(sweep, 9), histories(sweep, 9)
        for i in range(9):
            job = sweep / str(i)
            assert sorted(p.name for p in (job / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
            assert len(list(job.glob("wandb/offline-run-*/run-*.wandb"))) == 1
            assert (job / "nesterov_landscape.log").read_text().count("final loss") == 1
    (one, one_history), (two, two_history) = runs[1], runs[2]
    # one process: one stack of 9; two workers: stacks of at most ceil(9 / 2) = 5
    assert {s["stacked_with"] for s in one} == {8} and max(s["stacked_with"] for s in two) == 4
    assert [s["status"] for s in one].count("diverged") == 3  # lr = 10
    for a, b, ha, hb in zip(one, two, one_history, two_history):
        assert a["config"] == b["config"] and a["status"] == b["status"] and a["epochs_run"] == b["epochs_run"]
        assert b["threads"] == 1  # trainer.threads, as the worker trained
        assert ha == hb  # bitwise: every epoch's loss and gradient norm as written


def batched_sweep(tmp_path: Path, name: str, *args: str) -> tuple[Path, subprocess.CompletedProcess]:
    sweep = tmp_path / name
    return sweep, run_cli(*args, "hydra/launcher=batched", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path)


@pytest.mark.slow
def test_a_jobs_result_does_not_depend_on_how_the_sweep_was_split(tmp_path):
    """Issue 17: with 2 workers, seed 2 was a stack of one, trained unstacked, and ended 4e-3 off
    its value in a stack of three after 2,000 float64 epochs; trained as a stack of one it was 2%
    off, and seed 1, second in a stack of three but first in a stack of one, 2% too. One process (a
    stack of three), two workers (two and one), runs_per_stack=1 (three of one) and Hydra's basic
    launcher (three jobs, each trained alone) now write the same bytes."""
    sweep_args = ["seed=0,1,2", "trainer.epochs=2000", "trainer.precision=float64", "probe=none"]  # the paper's model
    splits = {
        "n1": ["hydra.launcher.n_jobs=1"],
        "n2": ["hydra.launcher.n_jobs=2"],
        "b1": ["hydra.launcher.runs_per_stack=1"],
        "basic": None,
    }
    written = {}
    for name, split in splits.items():
        if split is None:
            sweep = tmp_path / name
            result = run_cli(*sweep_args, f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path)
        else:
            sweep, result = batched_sweep(tmp_path, name, *sweep_args, *split)
        assert result.returncode == 0, result.stderr
        done = summaries(sweep, 3)
        written[name] = (
            [s["final_loss"] for s in done],
            [(sweep / str(i) / "history.csv").read_bytes() for i in range(3)],
        )
        assert [s["status"] for s in done] == ["completed"] * 3
        stacked = {"n1": [2, 2, 2], "n2": [1, 1, 0], "b1": [0, 0, 0], "basic": [0, 0, 0]}[name]
        assert [s["stacked_with"] for s in done] == stacked, name  # the splits really differ
    assert written["n1"] == written["n2"] == written["b1"] == written["basic"]
    assert len(set(written["n1"][0])) == 3  # three different runs


@pytest.mark.slow
def test_workers_are_capped_at_the_number_of_jobs(tmp_path):
    """Issue 17: hydra.launcher.n_jobs=1000 on 3 jobs started 229 worker processes; a 1-job sweep
    started 2. Counted here from /proc while each sweep runs."""
    for name, args, most, where in [
        ("three", ["seed=0,1,2", "hydra.launcher.n_jobs=1000"], 3, "on 3 worker processes"),
        ("one", ["seed=0"], 0, "on this process"),
        # the default, one per core, but too little training to pay for their start (issue 19)
        ("small", ["seed=0,1,2"], 0, "on this process (too little training to pay for workers"),
    ]:
        sweep, log = tmp_path / name, tmp_path / f"{name}.log"
        command = [sys.executable, "-m", "nesterov_landscape", *TINY, *args, "hydra/launcher=batched"]
        env = {**os.environ, "WANDB_SILENT": "true"}
        with log.open("w") as out:
            process = subprocess.Popen(
                [*command, f"hydra.sweep.dir={sweep}", "--multirun"],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        workers = set()
        while process.poll() is None:
            workers |= set(worker_processes(process.pid))
            time.sleep(0.05)
        output = log.read_text()
        jobs = len(args[0].split(","))
        assert process.returncode == 0, output
        assert len(workers) == most and f"Launching {jobs} jobs, stacked, {where}" in output, output
        warnings = [line for line in output.splitlines() if "hydra.launcher.n_jobs=1000 is more than the" in line]
        assert len(warnings) == (name == "three"), output
        assert all(s["status"] == "completed" for s in summaries(sweep, jobs))


def test_workers_start_only_where_the_sweeps_training_pays_for_them(tmp_path):
    """Issue 19: with n_jobs null, the paper preset's 5 seeds x 3,000 epochs took longer on two
    workers than in one process. The launcher now estimates the sweep's training (6 FLOP per weight,
    point and epoch, which torch's own FLOP counter confirms for one step) and starts k workers only
    above WORKER_START_FLOP k / (k - 1)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hydra_plugins.nesterov_landscape_batched.batched_launcher import WORKER_START_FLOP, BatchedLauncher
    from nesterov_landscape import limits
    from nesterov_landscape.problem import network_loss, setup_problem

    (config,) = configs(["model.width=35", "model.depth=10", "data.n_points=100", "data.input_dim=12"])
    problem = setup_problem(config)
    weights = problem.init.unsqueeze(0).requires_grad_()
    x, y = problem.data.x.unsqueeze(0), problem.data.y.unsqueeze(0)
    with FlopCounterMode(display=False) as counter:  # one step: its matmuls, forward and backward
        torch.autograd.grad(network_loss(config, problem.shape, weights, x, y).sum(), weights)
    assert limits.training_flop(config) / config.trainer.epochs == pytest.approx(counter.get_total_flops(), rel=0.05)

    setup_globals()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF)))
    master = loader.load_configuration(
        "config", ["hydra/launcher=batched", f"hydra.sweep.dir={tmp_path}"], RunMode.MULTIRUN
    )
    launcher = BatchedLauncher()
    launcher.job_configs = JobConfigs(HydraContext(config_loader=loader, callbacks=Callbacks(master)), master)
    paper = 6 * 100 * 11_831  # FLOP per epoch of the paper's network (11,831 weights, 100 points)

    def pays(workers: int, seeds: int, epochs: int) -> bool:
        launcher.workers = workers
        jobs = [(i, ["experiment=gupta2025_fig3", f"seed={i}", f"trainer.epochs={epochs}"]) for i in range(seeds)]
        return launcher._workers_pay(jobs)

    assert 5 * 3000 * paper < WORKER_START_FLOP * 2 < 8 * 4000 * paper
    assert not pays(2, 5, 3000) and pays(2, 8, 4000) and pays(2, 32, 4000)
    assert pays(16, 5, 3000)  # 16 workers: each needs to take only a sixteenth of the work
    assert not pays(2, 10_000, 1)  # a sweep of many tiny jobs: estimated from a sample, all the same


@pytest.mark.slow
def test_slurm_mode_through_submitits_local_executor(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        *TINY,
        "seed=0,1,2,3,4",
        "hydra/launcher=batched_slurm",
        "hydra.launcher.cluster=local",
        "hydra.launcher.runs_per_task=2",
        "hydra.launcher.runs_per_stack=2",
        f"hydra.sweep.dir={sweep}",
        "--multirun",
    ]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    done = summaries(sweep, 5)
    assert [s["status"] for s in done] == ["completed"] * 5
    assert sorted(s["stacked_with"] for s in done) == [0, 1, 1, 1, 1]  # stacks of 2, 2 and 1
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 3  # one task per 2 runs
    # the same command again finishes only what is unfinished: here nothing
    (sweep / "3" / "summary.json").unlink()
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    redone = summaries(sweep, 5)
    assert [s["wandb"]["id"] for i, s in enumerate(redone) if i != 3] == [
        s["wandb"]["id"] for i, s in enumerate(done) if i != 3
    ]
    assert redone[3]["status"] == "completed" and redone[3]["wandb"]["id"] != done[3]["wandb"]["id"]
    assert len(list((sweep / "3").glob("wandb/offline-run-*"))) == 1


def children(pid):
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def worker_processes(pid):
    """The batched launcher's worker processes (not the resource tracker, not W&B's service)."""
    try:
        return [c for c in children(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    except OSError:  # the process, or a child, has just ended
        return []


@pytest.mark.slow
@pytest.mark.guards("lost", "duplicated")
def test_a_worker_killed_mid_stack_then_the_same_command_finishes_only_the_rest(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        sys.executable,
        "-m",
        "nesterov_landscape",
        *TINY,
        "trainer.epochs=40000",
        "trainer.log_every=1000",
        "seed=0,1,2,3,4,5",
        "hydra/launcher=batched",
        "hydra.launcher.n_jobs=2",
        "hydra.launcher.runs_per_stack=2",
        f"hydra.sweep.dir={sweep}",
        "--multirun",
    ]
    env = {**os.environ, "WANDB_SILENT": "true"}
    sweep_process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    workers = []
    while len(workers) < 2 and time.monotonic() < deadline:
        workers = worker_processes(sweep_process.pid)
        time.sleep(0.2)
    time.sleep(8)  # both are training their first stacks: a stack of two trains for about 13 s here
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = sweep_process.communicate(timeout=300)
    assert sweep_process.returncode != 0 and b"worker process died" in stderr
    first = {i: json.loads(p.read_text()) for i in range(6) if (p := sweep / str(i) / "summary.json").exists()}
    # the other worker, told of its launcher's end, records its running stack interrupted
    assert {s["status"] for s in first.values()} <= {"completed", "interrupted"}
    first = {i: s for i, s in first.items() if s["status"] == "completed"}
    assert len(first) < 6
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    final = summaries(sweep, 6)
    assert all(s["status"] == "completed" for s in final)
    for i, summary in first.items():  # finished jobs were not run again
        assert final[i]["wandb"]["id"] == summary["wandb"]["id"]
    for i in range(6):
        assert len(list((sweep / str(i)).glob("wandb/offline-run-*"))) == 1


def stack_and_alone(*overrides_per_job):
    from nesterov_landscape.stack import train_jobs

    jobs = configs(*overrides_per_job)
    return train_jobs(jobs), [alone(c) for c in jobs]


def test_a_run_diverging_between_logging_points_keeps_the_row_of_its_epoch():
    """The stacked loop reads nothing back between history rows, yet records the divergence epoch
    (76 here, between rows every 5 epochs) with the loss and gradient norm of that epoch."""
    stacked, alone = stack_and_alone(
        ["optimizer.lr=10", "seed=0", "trainer.epochs=200"], ["optimizer.lr=0.01", "seed=0", "trainer.epochs=200"]
    )
    assert stacked[0].status == alone[0].status == "diverged"
    assert stacked[0].epochs_run == alone[0].epochs_run and stacked[0].epochs_run % 5 != 0
    for a, b in zip(stacked[0].history, alone[0].history, strict=True):  # the non-finite last row included
        assert a["epoch"] == b["epoch"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-10) and a["grad_norm"] == pytest.approx(
            b["grad_norm"], rel=1e-10
        )
    assert stacked[0].history[-1]["epoch"] == stacked[0].epochs_run
    assert stacked[1].status == "completed" and [r["epoch"] for r in stacked[1].history] == list(range(0, 201, 5))


def test_a_run_diverging_at_the_last_epoch_is_diverged():
    stacked, alone = stack_and_alone(
        ["optimizer.lr=10", "seed=0", "trainer.epochs=76"], ["seed=1", "trainer.epochs=76"]
    )
    assert (stacked[0].status, stacked[0].epochs_run) == (alone[0].status, alone[0].epochs_run) == ("diverged", 76)
    assert stacked[0].history[-1]["epoch"] == 76 and stacked[1].status == "completed"


@pytest.mark.slow
def test_a_compiled_stack_equals_the_eager_stack_in_float64():
    """trainer.compile compiles the loss and the update; float64 keeps the exact tanh."""
    from nesterov_landscape.stack import train_jobs

    runs = [["seed=0"], ["seed=1", "optimizer.lr=10", "trainer.epochs=100"], ["seed=2"]]
    common = ["trainer.epochs=100"]
    eager = train_jobs(configs(*[[*common, *r] for r in runs]))
    compiled = train_jobs(configs(*[[*common, *r, "trainer.compile=true"] for r in runs]))
    for a, b in zip(eager, compiled):
        assert (a.status, a.epochs_run, b.activation) == (b.status, b.epochs_run, "tanh")
        for ra, rb in zip(a.history, b.history, strict=True):
            assert ra["epoch"] == rb["epoch"]
            assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-10, nan_ok=True)


@pytest.mark.slow
def test_every_stack_of_a_process_is_compiled():
    """Dynamo keys its cache on the step's code, shared by every stack of a worker: without a reset
    per stack, the stacks past its recompile limit (8; 1 here) would silently train eager."""
    import torch

    from nesterov_landscape.stack import train_jobs

    graphs = torch._dynamo.utils.counters["stats"]
    # Dynamo's own patch: monkeypatch's undo left the setting unreadable for the next test's compile
    with torch._dynamo.config.patch(recompile_limit=1):
        for width in (8, 9):
            before = graphs["unique_graphs"]
            train_jobs(configs(*[["trainer.compile=true", f"model.width={width}", f"seed={s}"] for s in (0, 1)]))
            assert graphs["unique_graphs"] > before, width


def test_rational_tanh_is_float32_accurate_and_its_gradient_is_tanhs():
    import torch

    from nesterov_landscape.numerics.mlp import FAST_ACTIVATIONS, rational_tanh

    z = torch.cat(
        [torch.logspace(-8, 0.9, 20001, dtype=torch.float64), torch.linspace(7.9, 30, 101, dtype=torch.float64)]
    )
    z = torch.cat([z, -z])
    exact = torch.tanh(z)
    approx = rational_tanh(z.float()).double()
    assert ((approx - exact).abs() / exact.abs()).max() < 4e-7  # torch.tanh in float32: 1.1e-7
    w = z.float()[::50].clone().requires_grad_()
    (grad,) = torch.autograd.grad(FAST_ACTIVATIONS["tanh"](w).sum(), w)
    torch.testing.assert_close(grad.double(), 1 - torch.tanh(w.detach().double()) ** 2, rtol=0, atol=1e-6)


def test_probe_without_exact_derivatives_and_in_groups_of_lines_gives_the_same_profiles():
    import math

    import torch

    from nesterov_landscape.numerics.lines import gradient_lines, line_profiles, t_grid
    from nesterov_landscape.probes.gradient_line import columns

    torch.manual_seed(0)
    a = torch.randn(5, 6, dtype=torch.float64)
    centers = torch.randn(5, 6, dtype=torch.float64)

    def loss_rows(runs, weights):  # a different convex quartic per run
        return ((weights - centers[runs]) ** 2 * (1 + a[runs] ** 2)).sum(1) + ((weights - centers[runs]) ** 4).sum(1)

    w = torch.randn(5, 6, dtype=torch.float64)
    grid = t_grid(-1, 1, 0.25)
    exact = gradient_lines(loss_rows, w, grid, 0.01, "zero", 0.01)
    plain = gradient_lines(loss_rows, w, grid, 0.01, "zero", 0.01, exact=False)
    for e, p in zip(exact, plain):
        for column in ("phi", "phi_d", "phi_dd", "mu"):
            torch.testing.assert_close(columns(p)[column], columns(e)[column], equal_nan=True)
        assert all(math.isnan(v) for v in columns(p)["phi_dd_exact"].tolist())
        assert p.profile.phi_dd_exact_at_0 == pytest.approx(e.profile.phi_dd_exact_at_0)  # the HVP at t = 0 stays
    d = torch.randn(5, 6, dtype=torch.float64)
    grouped, whole = line_profiles(loss_rows, w, d, grid, 0.01, rows=2), line_profiles(loss_rows, w, d, grid, 0.01)
    for g, o in zip(grouped, whole, strict=True):
        torch.testing.assert_close(g.phi_dd_exact, o.phi_dd_exact)
        torch.testing.assert_close(g.phi, o.phi)


PER_RUN_VALUES = {
    "gd": [["optimizer.lr=0.005"], ["optimizer.lr=0.02"]],
    "nag": [["optimizer.lr=0.005", "optimizer.momentum=0.9"], ["optimizer.lr=0.01", "optimizer.momentum=0.99"]],
    "heavy_ball": [["optimizer.lr=0.005", "optimizer.momentum=0.5"], ["optimizer.lr=0.01", "optimizer.momentum=0.95"]],
    "nag_scheme": [["optimizer.eta=0.005", "optimizer.rho=0.9"], ["optimizer.eta=0.01", "optimizer.rho=0.99"]],
    "agnes": [
        ["optimizer.lr=0.001", "optimizer.correction=0.01", "optimizer.momentum=0.9", "optimizer.weight_decay=0.0"],
        ["optimizer.lr=0.002", "optimizer.correction=0.02", "optimizer.momentum=0.99", "optimizer.weight_decay=0.01"],
    ],
    "adam": [
        ["optimizer.lr=0.001", "optimizer.beta1=0.9", "optimizer.beta2=0.999", "optimizer.eps=1e-8"],
        [
            "optimizer.lr=0.01",
            "optimizer.beta1=0.5",
            "optimizer.beta2=0.9",
            "optimizer.eps=1e-4",
            "optimizer.weight_decay=0.1",
        ],
    ],
}


@pytest.mark.parametrize("optimizer", list(PER_RUN_VALUES))
def test_a_stack_with_different_hyperparameters_per_run_gives_each_run_its_own(optimizer):
    """Every scalar of every optimizer may differ inside a stack: histories (every column) and
    the stacked probe equal each run alone. 40 epochs: beyond about 45, rounding differences of the
    stacked matmuls (1e-16) grow to 1e-10 in the second Adam run (lr 0.01, eps 1e-4), which tells
    nothing about its hyperparameters."""
    import torch

    from nesterov_landscape.numerics.lines import gradient_line, t_grid
    from nesterov_landscape.probes.gradient_line import columns
    from nesterov_landscape.problem import setup_problem

    grid = ["probe.gradient_line.t_step=0.25", "trainer.epochs=40", f"optimizer={optimizer}"]
    runs = [[*grid, f"seed={seed}", *values] for seed in (0, 1) for values in PER_RUN_VALUES[optimizer]]
    stacked, alone = stack_and_alone(*runs)
    for s, a, config in zip(stacked, alone, configs(*runs)):
        assert (s.status, s.epochs_run) == (a.status, a.epochs_run)
        for rs, ra in zip(s.history, a.history, strict=True):
            assert rs.keys() == ra.keys() and rs["epoch"] == ra["epoch"]
            for column in rs.keys() - {"epoch"}:
                assert rs[column] == pytest.approx(ra[column], rel=1e-10), column
        problem, line = setup_problem(config), config.probe["gradient_line"]
        probe = gradient_line(
            problem.loss_in(problem.dtype),
            a.params,
            t_grid(-1, 1, 0.25),
            line.h,
            line.inf_phi,
            line.mu_cutoff,
            line.exact,
        )
        for name, values in columns(s.stacked_probes["gradient_line"]).items():
            torch.testing.assert_close(values, columns(probe)[name], rtol=1e-8, atol=1e-12, equal_nan=True)
    # the runs really differ: no two final losses agree
    finals = [s.history[-1]["loss"] for s in stacked]
    assert len(set(finals)) == len(finals)


SPLIT_RUNS = {
    **{name: [[f"optimizer={name}", *values] for values in runs] for name, runs in PER_RUN_VALUES.items()},
    "agnes_from_L_mu_sigma": [  # the coefficients derived in the update
        ["optimizer=agnes", "optimizer.L=5", "optimizer.mu=0.5", "optimizer.sigma=0.5"],
        ["optimizer=agnes", "optimizer.L=20", "optimizer.mu=0.1", "optimizer.sigma=0.0"],
    ],
}
# The paper's width and points: large enough that MKL, not torch's own loop, multiplies the matrices
# (a lone output-layer gradient product takes another MKL kernel than a stack of them)
PAPER_SIZES = ["model.width=35", "data.n_points=100"]


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(SPLIT_RUNS))
def test_a_run_gets_the_same_bits_alone_in_its_stack_and_beside_others_in_either_order(optimizer, precision):
    """What makes a batched job independent of how its sweep was split: alone in its stack, first
    or second beside a run with other hyperparameters, a run trains to the same bits (with one
    torch thread, a job's default: more threads split reductions by the stack's size)."""
    import torch

    from nesterov_landscape.stack import train_jobs

    runs = [
        ["trainer.epochs=40", "probe=none", f"trainer.precision={precision}", *PAPER_SIZES, *v]
        for v in SPLIT_RUNS[optimizer]
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first, second = train_jobs(configs(*runs)), train_jobs(configs(*runs[::-1]))[::-1]
        for run, beside, swapped in zip(runs, first, second):
            (alone,) = train_jobs(configs(run))
            assert alone.history == beside.history == swapped.history
            assert torch.equal(alone.params, beside.params) and torch.equal(alone.params, swapped.params)
            assert alone.stacked_with == 0 and beside.stacked_with == 1
    finally:
        torch.set_num_threads(threads)


def test_a_stack_holds_no_more_runs_than_trainer_max_memory_gb_allows():
    from nesterov_landscape import limits
    from nesterov_landscape.stack import runs_within_memory

    (config,) = configs([])
    parts = limits.memory_parts(config)
    per_run = sum(p.bytes for p in parts if not p.name.startswith("probe."))
    probe = sum(p.bytes for p in parts if p.name.startswith("probe."))
    for runs in (1, 3, 40):
        config.trainer.max_memory_gb = (probe + runs * per_run + per_run / 2) / limits.GB
        assert runs_within_memory(config) == runs


@pytest.mark.slow
def test_one_bad_job_of_a_batched_sweep_fails_alone(tmp_path):
    """Issue 8's reproduction 4: seed=-1 is refused with one line and leaves no folder; the others run."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        *TINY, "seed=-1,0,1", "hydra/launcher=batched", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path
    )
    assert result.returncode != 0 and "invalid config: seed=-1 is not allowed" in result.stderr
    assert not (sweep / "0").exists()
    done = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in (1, 2)]
    assert [s["status"] for s in done] == ["completed", "completed"] and done[0]["stacked_with"] == 1
