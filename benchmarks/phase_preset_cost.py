"""What the full `experiment=gupta2025_phase` sweep (2,400 runs) costs with the batched launcher on this
machine, without running it. The launcher trains it as 40 stacks (width x depth x precision), each of
3 momenta x 20 seeds = 60 runs. Measured here, per stack: training the 60 runs together for --epochs
epochs (scaled to the preset's 10,000; a step costs the same at every epoch), and the gradient-line
probe per run (on a stack of 6). The rest of a job (Hydra composing its config twice, W&B, files) is
taken from a real sweep of the preset: its wall time minus its training and probe time, per job.

Run: .venv/bin/python benchmarks/phase_preset_cost.py --sweep multirun/phase-reduced --wall SECONDS"""

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from nesterov_landscape.stack import train_jobs
from nesterov_landscape.config import register_configs, validate

ROOT = Path(__file__).resolve().parents[1]

PRESET_EPOCHS = 10_000
MOMENTA, SEEDS = (0.9, 0.95, 0.99), range(20)


def preset_params() -> dict[str, list[str]]:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=gupta2025_phase"], return_hydra_config=True)
    return {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items() if k != "seed"}


def stack(width: str, depth: str, precision: str, epochs: int, runs: int, probe: bool) -> list:
    """The configs of one stack: composed once (composing costs about 0.25 s), then a copy per
    momentum and seed, the values the batched launcher stacks."""
    overrides = ["experiment=gupta2025_phase", f"model.width={width}", f"model.depth={depth}"]
    overrides += [f"trainer.precision={precision}", f"trainer.epochs={epochs}"]
    overrides += [] if probe else ["probe=none"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        base = validate(compose("config", overrides=overrides), cuda_available=False)
    configs = []
    for seed, momentum in [(s, m) for s in SEEDS for m in MOMENTA][:runs]:
        config = copy.deepcopy(base)
        config.seed, config.optimizer.momentum = seed, momentum
        configs.append(config)
    return configs


def harness_seconds_per_job(sweep: Path, wall: float) -> tuple[float, int]:
    """A real sweep's wall time minus its training and probe time, per job."""
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    inside = sum(s["train_seconds"] + s.get("probe_seconds", 0.0) for s in summaries)
    return (wall - inside) / len(summaries), len(summaries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="epochs trained per stack (scaled to 10,000)")
    parser.add_argument("--sweep", type=Path, required=True, help="a finished sweep of the preset")
    parser.add_argument("--wall", type=float, required=True, help="that sweep's wall time, seconds")
    args = parser.parse_args()
    register_configs()
    torch.set_num_threads(1)  # as a job (trainer.threads)
    params = preset_params()
    harness, jobs = harness_seconds_per_job(args.sweep, args.wall)
    print(f"| width | depth | precision | training, 60 runs x {PRESET_EPOCHS} epochs (s) | probe per run (s) |")
    print("|---|---|---|---|---|")
    total_training = total_probe = 0.0
    runs = len(MOMENTA) * len(SEEDS)
    for width in params["model.width"]:
        for depth in params["model.depth"]:
            for precision in params["trainer.precision"]:
                start = time.perf_counter()
                train_jobs(stack(width, depth, precision, args.epochs, runs, probe=False))
                training = (time.perf_counter() - start) * PRESET_EPOCHS / args.epochs
                probed = train_jobs(stack(width, depth, precision, 1, 6, probe=True))
                probe = sum(r.probe_seconds for r in probed) / len(probed)
                total_training, total_probe = total_training + training, total_probe + runs * probe
                print(f"| {width} | {depth} | {precision} | {training:.0f} | {probe:.3f} |", flush=True)
    n_runs = runs * len(params["model.width"]) * len(params["model.depth"]) * len(params["trainer.precision"])
    total = total_training + total_probe + n_runs * harness
    print(
        f"\n{n_runs} runs: training {total_training:.0f} s, probes {total_probe:.0f} s, harness "
        f"{n_runs} x {harness:.2f} s (from {jobs} jobs of {args.sweep}) = {n_runs * harness:.0f} s; "
        f"total {total:.0f} s = {total / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
