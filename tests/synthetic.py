"""Job folders in the harness's file format, written by hand: sweeps for the analysis's tests and
benchmarks that need no training (tests/, benchmarks/analysis_1000_jobs.py)."""

import json
import math
from pathlib import Path

import yaml


def job_config(width: int, seed: int, momentum: float = 0.99) -> dict:
    return {
        "seed": seed,
        "loss": "half_mse",
        "model": {"name": "mlp", "depth": 2, "width": width, "activation": "tanh", "bias": True, "init": "pytorch"},
        "data": {"name": "teacher", "n_points": 16, "seed": None},
        "optimizer": {"name": "nag", "lr": 0.005, "momentum": momentum},
        "probe": {"gradient_line": {"radii": [0.1, 0.5, 1.0]}},
        "logger": {"name": "wandb", "mode": "offline", "tags": []},
        "trainer": {"epochs": 1000, "precision": "float32", "log_every": 10},
    }


def decaying_history(rate: float, epochs: int = 1000, every: int = 10, diverge_after: int | None = None):
    """loss = 10^(-rate * epoch) (exact powers of ten at multiples of 1/rate), inf after diverge_after."""
    rows = []
    for epoch in range(0, epochs + 1, every):
        if diverge_after is not None and epoch > diverge_after:
            rows.append((epoch, math.inf, math.inf))
            break
        rows.append((epoch, 10.0 ** (-rate * epoch), 1e-3))
    return rows


def write_job(
    job_dir: Path,
    config: dict,
    overrides: list[str],
    summary: dict | None = None,
    history: list[tuple] | None = None,
    landscape_curvature: float | None = None,
    final_loss_for_mu: float = 1e-10,
    landscape_points: int = 10,
) -> Path:
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if summary is not None:
        (job_dir / "summary.json").write_text(json.dumps({"config": config, "seed": config["seed"], **summary}))
    if history is not None:
        (job_dir / "history.csv").write_text(
            "epoch,loss,grad_norm\n" + "".join(f"{e},{loss!r},{g!r}\n" for e, loss, g in history)
        )
    if landscape_curvature is not None:
        lines = ["t,phi,phi_d,phi_dd,mu"]
        for k in range(-landscape_points, landscape_points + 1):
            t = k / landscape_points
            c = landscape_curvature
            mu = "" if k == 0 else repr(c - 2 * final_loss_for_mu / t**2)
            lines.append(f"{t!r},{final_loss_for_mu + c * t * t / 2!r},{c * t!r},{c!r},{mu}")
        (job_dir / "landscape.csv").write_text("\n".join(lines) + "\n")
    return job_dir


def write_multirun_yaml(sweep_dir: Path, task_overrides: list[str]) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": task_overrides}}}))


def completed_summary(final_loss: float, phi_dd_min: float, mu_min: float) -> dict:
    return {
        "status": "completed",
        "final_loss": final_loss,
        "epochs_run": 1000,
        "phi_dd_at_0": phi_dd_min + 1,
        "phi_dd_min_0p1": phi_dd_min,
        "mu_min_0p1": mu_min,
        "mu_min_1": mu_min / 2,
        "train_seconds": 1.0,
    }
