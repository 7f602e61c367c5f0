"""Shared by the tests: the config folder, a tiny job, and the command line as users run it."""

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from nesterov_landscape.config import register_configs

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


def compose_job(overrides: list[str], output_dir: Path):
    """The job config as Hydra would pass it, with HydraConfig set up for a single run in output_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.override_dirname = ",".join(overrides)
    HydraConfig.instance().set_config(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m nesterov_landscape ARGS` as a user runs it."""
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "nesterov_landscape", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
