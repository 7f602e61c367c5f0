"""Sweeps through the real Hydra launchers: joblib (local parallel) and submitit (cluster)."""

import json

import pytest
from hydra.utils import instantiate

from .helpers import TINY, compose_config, run_cli


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_two_job_sweep(launcher, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        *TINY, "seed=0,1", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    summaries = [json.loads((sweep / str(n) / "summary.json").read_text()) for n in (0, 1)]
    assert [s["seed"] for s in summaries] == [0, 1] and all(s["status"] == "completed" for s in summaries)
    assert all(s["threads"] == 1 for s in summaries)  # one torch thread per worker
    assert len({s["wandb"]["id"] for s in summaries}) == 2 and list(sweep.glob("*/wandb/offline-run-*"))


def test_slurm_launcher_config_composes_and_instantiates():
    """Hydra 1.3 with hydra-submitit-launcher 1.2 had a structured-config clash (hydra issue 2697):
    the slurm config must compose with our keys and build the real SlurmLauncher."""
    cfg = compose_config(
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.mem_gb=8"], hydra=True
    )
    launcher = cfg.hydra.launcher
    assert (launcher.partition, launcher.mem_gb, launcher.cpus_per_task, launcher.timeout_min) == ("gpu", 8, 1, 60)
    assert launcher.array_parallelism == 256 and launcher.gpus_per_node is None
    slurm = instantiate(launcher)
    assert type(slurm).__name__ == "SlurmLauncher" and slurm.params["partition"] == "gpu"
