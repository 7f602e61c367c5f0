"""`make bench`: wall time per run of the paper preset (10 hidden layers x 35, 10,000 epochs,
float32, one thread) for every way the harness can run it, measured side by side in one
invocation, with the ratios the targets are stated in. Prints a Markdown report; --out FILE saves it."""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nesterov_landscape.batched import train_together  # noqa: E402
from nesterov_landscape.config import register_configs, validate  # noqa: E402
from nesterov_landscape.train import train  # noqa: E402
from tests.helpers import compose_job  # noqa: E402

PAPER = ["experiment=gupta2025_fig3", "trainer.threads=1"]
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its parent's peak.
PEAK = "int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
MAXRSS = (
    "import runpy, sys\n"
    "sys.argv = ['nesterov_landscape'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('nesterov_landscape', run_name='__main__')\n"
    f"finally:\n    print('MAXRSS_KB', {PEAK}, file=sys.stderr)\n"
)


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    gpu = f", GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{os.cpu_count()} cores ({cpu}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
        f"{gpu}; Python {platform.python_version()}, torch {torch.__version__}"
    )


def single_job(tmp: Path, *overrides: str) -> dict:
    start = time.perf_counter()
    cfg = compose_job([*PAPER, *overrides], tmp / f"job{time.monotonic_ns()}")
    compose_seconds = time.perf_counter() - start
    start = time.perf_counter()
    summary = train(cfg)
    return summary | {"compose_seconds": compose_seconds, "job_seconds": time.perf_counter() - start}


def stacked(runs: int, device: str = "cpu") -> float:
    """Training seconds per run when `runs` seeds train as one stacked computation (no probe)."""
    from tests.test_config import compose_config

    configs = [
        validate(
            compose_config([*PAPER, f"seed={s}", f"trainer.device={device}", "probe=none"]),
            cuda_available=torch.cuda.is_available(),
        )
        for s in range(runs)
    ]
    start = time.perf_counter()
    train_together(configs)
    return (time.perf_counter() - start) / runs


def multirun(tmp: Path, launcher: str, seeds: int = 5) -> tuple[float, float]:
    """End-to-end wall seconds of `--multirun seed=0..4` and its peak memory (MiB)."""
    sweep = tmp / f"sweep-{launcher}"
    args = [
        sys.executable,
        "-c",
        MAXRSS,
        *PAPER,
        f"seed={','.join(map(str, range(seeds)))}",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={sweep}",
        "--multirun",
    ]
    start = time.perf_counter()
    result = subprocess.run(args, cwd=tmp, capture_output=True, text=True, env={**os.environ, "WANDB_SILENT": "true"})
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{launcher} multirun failed:\n{result.stderr[-2000:]}")
    rss = max(int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    return seconds, rss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--skip-50", action="store_true", help="leave out the 50-run stack (2-3 minutes)")
    args = parser.parse_args()
    register_configs()
    torch.set_num_threads(1)
    lines = [
        f"# make bench, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {machine()}.",
        "",
        "The paper preset: 10 hidden layers of width 35, 100 points, 10,000 full-batch epochs, float32, "
        "one torch thread per job, W&B offline.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        single_job(tmp, "trainer.epochs=10", "probe=none")  # first W&B start in this process: not a job's cost
        eager = single_job(tmp)
        compiled = single_job(tmp, "trainer.compile=true")
        per_run_5 = stacked(5)
        per_run_50 = None if args.skip_50 else stacked(50)
        basic, basic_rss = multirun(tmp, "basic")
        batched, batched_rss = multirun(tmp, "batched")
        joblib, joblib_rss = multirun(tmp, "joblib")
        gpu_rows = []
        if torch.cuda.is_available():
            for runs in (5, 1000):
                gpu_rows.append((f"batched {runs} runs on the GPU (training)", stacked(runs, "cuda")))
    train_eager = eager["train_seconds"]
    rows = [
        ("eager single job: training", train_eager, 1.0),
        ("compiled single job: training", compiled["train_seconds"], train_eager / compiled["train_seconds"]),
        ("compiled single job: compiling (once per job)", compiled["compile_seconds"], None),
        ("batched 5 runs: training per run", per_run_5, train_eager / per_run_5),
    ]
    if per_run_50 is not None:
        rows.append(("batched 50 runs: training per run", per_run_50, train_eager / per_run_50))
    rows += [(name, seconds, train_eager / seconds) for name, seconds in gpu_rows]
    rows += [
        ("5-seed multirun, basic launcher (eager): per run, end to end", basic / 5, None),
        ("5-seed multirun, batched launcher: per run, end to end", batched / 5, basic / batched),
        ("5-seed multirun, joblib 2 workers: per run, end to end", joblib / 5, basic / joblib),
    ]
    lines += ["| what | seconds | speed-up |", "|---|---|---|"]
    lines += [
        f"| {name} | {seconds:.2f} | {'' if ratio is None else f'{ratio:.2f}x'} |" for name, seconds, ratio in rows
    ]
    job = eager["compose_seconds"] + eager["job_seconds"]
    overhead = {
        "Hydra compose": eager["compose_seconds"],
        "probe (gradient_line)": eager["probe_seconds"],
        "W&B init/log/finish, set-up, file writes": eager["job_seconds"]
        - eager["train_seconds"]
        - eager["probe_seconds"],
    }
    lines += [
        "",
        f"Harness overhead of one eager 10,000-epoch job ({job:.2f} s, of which training {train_eager:.2f} s):",
        "",
        "| part | seconds | share of the job |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {seconds:.2f} | {seconds / job:.1%} |" for name, seconds in overhead.items()]
    lines += [
        f"| all that is not training | {job - train_eager:.2f} | {(job - train_eager) / job:.1%} |",
        "",
        "Peak memory (max RSS of the Python process that runs the sweep, W&B's service process "
        f"not counted): basic {basic_rss:.0f} MiB, batched {batched_rss:.0f} MiB, joblib {joblib_rss:.0f} MiB "
        "(the parent; each worker is a process like the basic one); this benchmark process "
        "(stacks of 5 and 50 runs) "
        f"{eval(PEAK) / 1024:.0f} MiB.",
        "",
        "Targets: batched 5-seed multirun >= 2.5x faster end to end than basic: "
        f"{basic / batched:.2f}x. Batched 50-run training per run <= 1/4.5 of eager: "
        + (f"1/{train_eager / per_run_50:.2f}." if per_run_50 else "not measured (--skip-50).")
        + f" Harness overhead <= 10% of a job: {(job - train_eager) / job:.1%}.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
