"""The job: `train(cfg)` wires a validated config to the numerics, the job's files and W&B."""
import logging
import math
import platform
import shutil
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import wandb
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import probes
from .config import Config, ConfigError, GradientLineConfig, validate
from .data import make_teacher_data
from .job_files import write_csv, write_json
from .mlp import MLPShape, forward, init_params
from .optimizers import OPTIMIZERS
from .training import mean_squared_error, train_full_batch
from .wandb_run import log_landscape, start_run

log = logging.getLogger(__name__)


def derive_seed(seed: int, stream: str) -> int:
    """Independent seeds for the data and the student from one top-level seed."""
    return int(np.random.SeedSequence([seed, zlib.crc32(stream.encode())]).generate_state(1)[0])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "hydra": hydra.__version__, "wandb": wandb.__version__, "platform": platform.platform()}


def t_grid(t_min: float, t_max: float, t_step: float) -> torch.Tensor:
    """The multiples of t_step in [t_min, t_max], so t = 0 is on the grid whenever in range."""
    ks = torch.arange(math.ceil(t_min / t_step - 1e-9), math.floor(t_max / t_step + 1e-9) + 1)
    return ks.to(torch.float64) * t_step


def remove_unstarted_job_dir(output_dir: Path) -> None:
    """A job rejected before any work leaves nothing behind: Hydra already made its folder (and
    the dated folders above it), holding only its own .hydra/ and log."""
    if output_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in output_dir.iterdir()):
        shutil.rmtree(output_dir)
        for parent in output_dir.parents:
            if parent == Path.cwd() or any(parent.iterdir()):
                break
            parent.rmdir()


def job_identity() -> dict[str, Any]:
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return {
        "output_dir": hc.runtime.output_dir,
        "multirun": multirun,
        "num": OmegaConf.select(hc, "job.num", default=None),
        "override_dirname": hc.job.override_dirname,
        "sweep_dir": hc.sweep.dir if multirun else None,
    }


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train the student on teacher data, probe the landscape, write summary.json, history.csv,
    landscape.csv and one W&B run into the job's Hydra output directory; return the summary.

    A diverging run is a result (status "diverged"), not an error."""
    job = job_identity()
    output_dir = Path(job["output_dir"])
    try:
        config = validate(cfg, cuda_available=torch.cuda.is_available())
    except ConfigError:
        remove_unstarted_job_dir(output_dir)
        raise
    torch.set_num_threads(config.trainer.threads)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    group = config.logger.group or (Path(job["sweep_dir"]).as_posix().replace("/", "_") if job["multirun"] else None)
    run, wandb_mode = start_run(
        config.logger.mode, config.logger.init_timeout, dir=str(output_dir), project=config.logger.project,
        entity=config.logger.entity, group=group, job_type=config.logger.job_type,
        tags=list(config.logger.tags), name=job["override_dirname"] or None, config=resolved)
    summary: dict[str, Any] = {"status": "running", "seed": config.seed, "config": resolved,
                               "versions": versions(), "job": job,
                               "wandb": {"mode": wandb_mode, "id": run.id, "group": group}}
    try:
        summary.update(run_experiment(config, output_dir, run))
        write_json(output_dir / "summary.json", summary)
        run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
    except BaseException as error:
        summary.update(status="failed", error=f"{type(error).__name__}: {error}")
        write_json(output_dir / "summary.json", summary)
        run.finish(exit_code=1)
        raise
    run.finish()
    log.info("%s: final loss %.3e after %d epochs; files in %s", summary["status"], summary["final_loss"],
             summary["epochs_run"], output_dir)
    return summary


def run_experiment(config: Config, output_dir: Path, run: Any) -> dict[str, Any]:
    """Everything after set-up: data, training, probe, files. Returns the summary's results."""
    device = resolve_device(config.trainer.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    dtype = getattr(torch, config.trainer.precision)
    data_seed = config.data.seed if config.data.seed is not None else derive_seed(config.seed, "data")
    model_seed = derive_seed(config.seed, "model")
    d = config.data
    data = make_teacher_data(
        d.n_points, d.input_dim, d.input_dist, MLPShape(d.input_dim, d.teacher_width, d.teacher_depth),
        d.teacher_activation, d.labels, d.label_noise, torch.Generator().manual_seed(data_seed))
    m = config.model
    shape = MLPShape(d.input_dim, m.width, m.depth, m.bias)
    params = init_params(shape, m.init, torch.Generator().manual_seed(model_seed))

    def loss_in(precision: torch.dtype):
        x, y = data.x.to(device, precision), data.y.to(device, precision)
        return lambda w: mean_squared_error(config.loss, forward(shape, m.activation, w, x), y)

    optimizer = OPTIMIZERS[config.optimizer.name]
    hyperparams = optimizer.hyperparams(**{k: v for k, v in vars(config.optimizer).items() if k != "name"})
    epochs = config.trainer.epochs
    log_stride = max(config.trainer.log_every, epochs // 10)
    bar = tqdm(total=epochs, unit="epoch", disable=not sys.stderr.isatty(), dynamic_ncols=True)

    def on_record(row: dict[str, float]) -> None:
        run.log({"epoch": row["epoch"], "train/loss": row["loss"], "train/grad_norm": row["grad_norm"]},
                step=row["epoch"])
        bar.update(row["epoch"] - bar.n)
        bar.set_postfix(loss=f"{row['loss']:.3e}", refresh=False)
        if row["epoch"] % log_stride == 0 or row["epoch"] == epochs or not math.isfinite(row["loss"]):
            log.info("epoch %d: loss %.3e, grad norm %.3e", row["epoch"], row["loss"], row["grad_norm"])

    log.info("training %s (%d weights, %s, %s) with %s for %d epochs", m.name, shape.n_params,
             config.trainer.precision, device, config.optimizer.name, epochs)
    with logging_redirect_tqdm():  # log lines print above the bar, not through it
        result = train_full_batch(loss_in(dtype), params.to(device, dtype), optimizer, hyperparams,
                                  epochs, config.trainer.log_every, on_record)
    bar.close()
    write_csv(output_dir / "history.csv", ["epoch", "loss", "grad_norm"],
              ([r["epoch"], r["loss"], r["grad_norm"]] for r in result.history))
    out: dict[str, Any] = {
        "status": result.status, "final_loss": result.history[-1]["loss"],
        "final_grad_norm": result.history[-1]["grad_norm"], "epochs_run": result.epochs_run,
        "diverged_at_epoch": result.epochs_run if result.status == "diverged" else None,
        "data_seed": data_seed, "model_seed": model_seed, "n_params": shape.n_params,
        "raw_label_std": data.raw_label_std, "precision": config.trainer.precision,
        "device": str(device), "threads": torch.get_num_threads(), "train_seconds": result.seconds,
    }
    if isinstance(config.probe, GradientLineConfig) and result.status == "completed":
        out.update(probe_gradient_line(config.probe, loss_in, result.params, dtype, output_dir, run,
                                       result.epochs_run))
    return out


def probe_gradient_line(probe: GradientLineConfig, loss_in, params: torch.Tensor, train_dtype: torch.dtype,
                        output_dir: Path, run: Any, step: int) -> dict[str, Any]:
    start = time.perf_counter()
    dtype = getattr(torch, probe.precision) if probe.precision else train_dtype
    line = probes.gradient_line(loss_in(dtype), params.to(dtype),
                                t_grid(probe.t_min, probe.t_max, probe.t_step).to(params.device),
                                probe.h, probe.inf_phi, probe.mu_cutoff)
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"probe": "gradient_line", "probe_precision": str(dtype).removeprefix("torch."),
                           "probe_seconds": seconds}
    if line is None:
        log.warning("gradient_line probe skipped: the gradient at the final weights is zero or not finite")
        return out | {"probe_status": "skipped: zero or non-finite gradient"}
    columns = {name: values.cpu().tolist() for name, values in line.columns().items()}
    write_csv(output_dir / "landscape.csv", list(columns), zip(*columns.values()))
    log_landscape(run, {k: columns[k] for k in ("t", "phi", "phi_dd", "mu")}, step)
    return out | {"probe_status": "completed"} | line.scalars(probe.radii)
