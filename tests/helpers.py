"""Shared by the tests: the config folder, a tiny job, composing configs as Hydra does, jobs trained
in-process, an independent torch.nn network, and the command lines as users run them."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from nesterov_landscape.config import Config, register_configs, validate
from nesterov_landscape.numerics.mlp import MLPShape
from nesterov_landscape.problem import setup_problem, train_alone
from nesterov_landscape.numerics.training import TrainResult

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# Small enough that a job takes about a second; every test job starts from these.
TINY = [
    "model.depth=2",
    "model.width=8",
    "data.n_points=16",
    "data.input_dim=3",
    "data.teacher_depth=1",
    "data.teacher_width=4",
    "trainer.epochs=20",
    "trainer.log_every=5",
]

register_configs()


def compose_config(overrides: list[str], hydra: bool = False) -> DictConfig:
    """The config Hydra composes from conf/ for these overrides; with `hydra`, its hydra node too."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra)


def compose_job(overrides: list[str], output_dir: Path):
    """The job config as Hydra would pass it, with HydraConfig set up for a single run in output_dir."""
    cfg = compose_config(overrides, hydra=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.override_dirname = ",".join(overrides)
    HydraConfig.instance().set_config(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def configs(*overrides_per_job: list[str]) -> list[Config]:
    """Validated configs of tiny float64 jobs, one per list of overrides."""
    return [
        validate(compose_config([*TINY, "trainer.precision=float64", *o]), cuda_available=False)
        for o in overrides_per_job
    ]


def alone(config: Config) -> TrainResult:
    """The job's network trained in its own unstacked loop (as jobs with mini-batches train), in-process:
    another form of the computation than the stack of one a job alone trains as, equal to it to rounding."""
    return train_alone(setup_problem(config))


def as_module(shape: MLPShape, activation: str, params: torch.Tensor) -> torch.nn.Sequential:
    """The same network built from torch.nn layers, an independent implementation of `forward`."""
    modules = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "softplus": torch.nn.Softplus}
    layers, offset = [], 0
    for i, (fan_in, fan_out) in enumerate(shape.layers):
        linear = torch.nn.Linear(fan_in, fan_out, bias=shape.bias, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(params[offset : offset + fan_in * fan_out].view(fan_out, fan_in))
            offset += fan_in * fan_out
            if shape.bias:
                linear.bias.copy_(params[offset : offset + fan_out])
                offset += fan_out
        layers.append(linear)
        if i < len(shape.layers) - 1:
            layers.append(modules[activation]())
    assert offset == shape.n_params
    return torch.nn.Sequential(*layers)


def cli_env(env: dict | None = None) -> dict:
    """The environment of a command the tests run: this test's (its W&B isolation, say), W&B quiet."""
    return {**os.environ, "WANDB_SILENT": "true", **(env or {})}


def run_cli(
    *args: str,
    cwd: Path,
    timeout: float = 300,
    env: dict | None = None,
    prefix: tuple[str, ...] = (),
    **popen,
) -> subprocess.CompletedProcess:
    """`python -m nesterov_landscape ARGS` as a user runs it, after `prefix` (a command that runs it);
    `popen`: more of subprocess.run's arguments (say user= and group= for another user)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "nesterov_landscape", *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def start_cli(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    """`python -m nesterov_landscape ARGS` in the background, its output in `log`."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nesterov_landscape", *args],
            cwd=cwd,
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run_analysis(*args: str, cwd: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python -m multirun_analysis ARGS` as a user runs it, after `prefix` (a command that runs it, e.g. setpriv)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "multirun_analysis", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
