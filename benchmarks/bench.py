"""`make bench`: the harness's speed and memory, measured side by side in one invocation, with the
ratios its targets are stated in. Prints a Markdown report; --out FILE saves it.

Sections (all by default; --only picks some): `step` (training per run of the paper preset: a job
alone, its unstacked loop, stacks of 50 eager and compiled, and torch's own ways to train 50 such
networks; where the compiled stack misses 1.0 s a run, where its step's time goes), `small` (small
sweeps with the default worker count against one process), `bookkeeping` (batched sweeps of 50 and
2,000 jobs of 10 epochs: the cost per job beyond training and probes, and peak memory), `start` (a
10,000-job sweep: when its first training starts), `paper` (the paper preset over 100 seeds through
the basic launcher, the batched launcher in one process and on all cores; the share of seeds in the
published range), `reprobe` (a 200-job sweep of the paper preset re-probed with the hessian probe,
per job, beside training it)."""

import argparse
import copy
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from nesterov_landscape.config import register_configs, validate
from nesterov_landscape.problem import setup_problem, train_alone
from nesterov_landscape.stack import train_jobs

ROOT = Path(__file__).resolve().parents[1]
PAPER = ["experiment=gupta2025_fig3", "trainer.threads=1"]
PUBLISHED = (1e-12, 1e-9)
REPEATS = 3  # of the comparisons whose targets are closer than a run's noise on a shared machine
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


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (workers, W&B services), MiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(next(line.split()[1] for line in open(f"/proc/{p}/status") if line.startswith("VmRSS")))
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
        except (OSError, StopIteration):
            pass
    return total / 1024


class Sweep:
    """`python -m nesterov_landscape ARGS --multirun` in a fresh folder, its wall time and the peak
    memory of its process tree, sampled every 0.1 s."""

    def __init__(self, tmp: Path, name: str, *args: str, stop_when=None) -> None:
        self.dir = tmp / name
        command = [sys.executable, "-c", MAXRSS, *args, f"hydra.sweep.dir={self.dir}", "--multirun"]
        env = {**os.environ, "WANDB_SILENT": "true"}
        self.launched = time.time()
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.peak_tree_mb, stopped = 0.0, False
        stderr: list[bytes] = []
        reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()))
        reader.start()
        while process.poll() is None:
            self.peak_tree_mb = max(self.peak_tree_mb, tree_rss_mb(process.pid))
            if stop_when is not None and not stopped and stop_when(self):
                process.send_signal(signal.SIGINT)
                stopped = True
            time.sleep(0.1)
        reader.join()
        self.seconds = time.perf_counter() - start
        self.stderr = b"".join(stderr).decode(errors="replace")
        if process.returncode != 0 and not stopped:
            raise RuntimeError(f"sweep {name} failed:\n{self.stderr[-3000:]}")
        rss = [int(line.split()[1]) for line in self.stderr.splitlines() if line.startswith("MAXRSS_KB")]
        self.main_peak_mb = max(rss) / 1024 if rss else float("nan")

    def summaries(self) -> list[dict]:
        paths = sorted(self.dir.glob("*/summary.json"), key=lambda p: int(p.parent.name))  # job number order
        return [json.loads(p.read_text()) for p in paths]


def paper_configs(runs: int, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return [
            validate(compose("config", overrides=[*PAPER, f"seed={s}", "probe=none", *overrides]), cuda_available=False)
            for s in range(runs)
        ]


def step_section(rows: list, notes: list, peer_epochs: int) -> None:
    """Training per run of the paper preset: a job alone (a stack of one, as `python -m
    nesterov_landscape` trains it), the same model in its own loop (the unstacked form, as a job
    with mini-batches trains), 50-run stacks eager and compiled, and torch's own ways to train 50
    such networks (peers), each scaled from peer_epochs to 10,000 epochs."""
    (alone,) = paper_configs(1)
    problem = setup_problem(alone)
    single, unstacked = float("inf"), float("inf")
    for _ in range(REPEATS):  # alternately, the fastest of each: the two differ by less than the machine's noise
        single = min(single, train_jobs([alone])[0].seconds)
        unstacked = min(unstacked, train_alone(problem).seconds)
    eager = train_jobs(paper_configs(50))
    compiled = train_jobs(paper_configs(50, "trainer.compile=true"))
    peers = {name: peer(paper_configs(50), peer_epochs) * 10_000 / peer_epochs for name, peer in PEERS.items()}
    best = min(peers.values())
    rows += [
        (f"training per run: a job alone (a stack of one, eager; fastest of {REPEATS})", single, "1.00x"),
        ("  the job in its own unstacked loop (as mini-batch jobs train)", unstacked, f"{single / unstacked:.2f}x"),
        ("training per run per core: 50-run stack, eager", eager[0].seconds, f"{single / eager[0].seconds:.2f}x"),
        (
            f"training per run per core: 50-run stack, compiled (rational tanh, {compiled[0].products}'s products)",
            compiled[0].seconds,
            f"{single / compiled[0].seconds:.2f}x",
        ),
        ("compiling the 50-run stack (once per stack)", compiled[0].compile_seconds * 50, ""),
        *[(f"peer, 50 runs: {name} (per run)", seconds, f"{single / seconds:.2f}x") for name, seconds in peers.items()],
    ]
    notes.append(
        f"Targets: a stack of one within 10% of the job's unstacked loop: {single / unstacked:.2f}x its time; "
        f"the compiled 50-run stack <= 1.0 s per run per core: {compiled[0].seconds:.2f} s; >= 2x the best torch "
        f"peer ({best:.2f} s per run): eager {best / eager[0].seconds:.2f}x, "
        f"compiled {best / compiled[0].seconds:.2f}x. "
        f"Peers trained {peer_epochs:,} epochs, scaled to 10,000."
    )
    if compiled[0].seconds > 1.0:
        notes.append(step_profile(compiled[0].seconds))


def step_profile(seconds_per_run: float, epochs: int = 300) -> str:
    """Where the compiled 50-run step's time goes, from torch.profiler with Inductor's records of
    its own kernels: the batched products (libxsmm's or torch's) against the core's float32 peak,
    Inductor's fused kernels (tanh, its derivative, the update), and the rest (the graph's calls,
    Dynamo, allocations, the profiler's own records); beside the step as timed unprofiled
    (seconds_per_run per 10,000 epochs) and what a step may take for 1.0 s per run."""
    import torch._inductor.config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    configs = paper_configs(50, "trainer.compile=true", f"trainer.epochs={epochs}", f"trainer.log_every={epochs}")
    with inductor_config.patch({"cpp.enable_kernel_profile": True}), profile(activities=[ProfilerActivity.CPU]) as prof:
        result = train_jobs(configs)[0]
    # result.seconds leaves out the first of the epochs + 1 steps (compiling), which the kernels' totals hold
    profiled_ms, step_ms = result.seconds * len(configs) / epochs * 1000, seconds_per_run * len(configs) / 10
    per_step = {e.key: e.self_cpu_time_total / 1000 / (epochs + 1) for e in prof.key_averages()}
    products = sum(ms for key, ms in per_step.items() if key.startswith("small_gemm::") or key in PRODUCTS)
    fused: dict[str, float] = {}  # Inductor's kernels, one entry per kind (a layer's copies grouped)
    for key, ms in per_step.items():
        if "cpp_fused_" in key:
            kind = key.split("cpp_fused_", 1)[1].rstrip("0123456789").rstrip("_")
            fused[kind] = fused.get(kind, 0.0) + ms
    largest = sorted(fused.items(), key=lambda item: -item[1])[:3]
    problem = setup_problem(configs[0])
    n = configs[0].data.n_points
    # W h for every layer, W^T g for all but the first, g h^T for every layer: 2 n fan_in fan_out each;
    # a layer with a size of 1 (the output layer) is a broadcast product in the fused kernels (mlp._stacked_map)
    flops = len(configs) * sum(
        2 * n * fan_in * fan_out * (2 if i == 0 else 3)
        for i, (fan_in, fan_out) in enumerate(problem.shape.layers)
        if 1 not in (fan_in, fan_out, n)
    )
    peak = core_peak_gflops()
    return (
        f"Where the compiled 50-run step's time goes (torch.profiler with Inductor's kernel records, {epochs} "
        f"epochs): a step takes {step_ms:.2f} ms unprofiled, {profiled_ms:.2f} ms profiled, and 1.0 s per run "
        f"would be {len(configs) / 10:.2f} ms. Profiled, "
        f"the batched products ({result.products}) {products:.2f} ms, {flops / 1e6:.0f} MFLOP at "
        f"{flops / products / 1e6 if products else float('nan'):.0f} GFLOP/s, against this core's float32 peak "
        f"of {peak:.0f} GFLOP/s "
        f"(a 512 x 512 product), at which they alone would take {flops / peak / 1e6:.2f} ms; Inductor's fused "
        f"kernels {sum(fused.values()):.2f} ms, the largest (named by the ops each fuses) "
        + ", ".join(f"{kind[:48]} {ms:.2f} ms" for kind, ms in largest)
        + f"; the rest (the graph's calls, Dynamo, allocations, the profiler's own records) "
        f"{profiled_ms - products - sum(fused.values()):.2f} ms. The products at that peak and the fused kernels "
        f"as they are would take {flops / peak / 1e6 + sum(fused.values()):.2f} ms a step."
    )


PRODUCTS = {"aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm"}  # torch's, where libxsmm's are not built


def core_peak_gflops() -> float:
    """One thread's float32 GFLOP/s on a 512 x 512 product, the best of 20."""
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    a @ b
    best = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 512**3 / best / 1e9


def peer_networks(configs) -> tuple[list[torch.nn.Module], torch.Tensor, torch.Tensor]:
    """The paper's network as torch.nn layers, one per config (torch's default init), and each
    run's data (B, n, d), (B, n) in float32, as the project's jobs draw it."""
    problems = [setup_problem(c) for c in configs]
    shape = problems[0].shape
    torch.manual_seed(0)
    networks = []
    for _ in problems:
        layers: list[torch.nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(shape.layers):
            layers += [torch.nn.Linear(fan_in, fan_out)] + ([torch.nn.Tanh()] if i < len(shape.layers) - 1 else [])
        networks.append(torch.nn.Sequential(*layers))
    x = torch.stack([p.data.x for p in problems]).float()
    y = torch.stack([p.data.y for p in problems]).float()
    return networks, x, y


def peer_loop(configs, epochs: int) -> float:
    """A Python loop over the networks, each with torch.optim.SGD(nesterov=True): seconds per run."""
    networks, x, y = peer_networks(configs)
    optimizers = [torch.optim.SGD(n.parameters(), lr=0.005, momentum=0.99, nesterov=True) for n in networks]
    start = time.perf_counter()
    for _ in range(epochs):
        for i, (network, optimizer) in enumerate(zip(networks, optimizers)):
            optimizer.zero_grad(set_to_none=True)
            (0.5 * (network(x[i]).squeeze(-1) - y[i]).square().mean()).backward()
            optimizer.step()
    return (time.perf_counter() - start) / len(networks)


def peer_vmap(configs, epochs: int, compile: bool = False) -> float:
    """torch.func.stack_module_state + vmap(functional_call), one torch.optim.SGD(nesterov=True) on
    the stacked weights; `compile`: the vmapped loss torch.compile'd. Seconds per run, compiling excluded."""
    networks, x, y = peer_networks(configs)
    params, buffers = torch.func.stack_module_state(networks)
    base = copy.deepcopy(networks[0]).to("meta")

    def loss(p, b, xi, yi):
        return 0.5 * (torch.func.functional_call(base, (p, b), (xi,)).squeeze(-1) - yi).square().mean()

    losses = torch.func.vmap(loss)
    if compile:
        torch.compiler.reset()
        losses = torch.compile(losses, dynamic=False)
    optimizer = torch.optim.SGD(params.values(), lr=0.005, momentum=0.99, nesterov=True)

    def step():
        optimizer.zero_grad(set_to_none=True)
        losses(params, buffers, x, y).sum().backward()
        optimizer.step()

    step()  # compiles, where compiled
    start = time.perf_counter()
    for _ in range(epochs - 1):
        step()
    return (time.perf_counter() - start) / len(networks) * epochs / (epochs - 1)


PEERS = {
    "python loop over nn.Sequential + torch.optim.SGD(nesterov=True)": peer_loop,
    "torch.func stack_module_state + vmap(functional_call) + SGD, eager": peer_vmap,
    "the same, the vmapped loss torch.compile'd": lambda configs, epochs: peer_vmap(configs, epochs, compile=True),
}


def small_section(tmp: Path, rows: list, notes: list) -> None:
    """Small batched sweeps of the paper preset with the default worker count (one per core, where
    the sweep's training pays for them) against hydra.launcher.n_jobs=1, end to end: each REPEATS
    times, alternately, and the fastest (the same sweep's time varies by 10% on a shared machine)."""
    ratios = []
    for seeds, epochs in ((5, 3000), (32, 4000)):
        args = [*PAPER, f"seed=range(0,{seeds})", f"trainer.epochs={epochs}", "hydra/launcher=batched"]
        runs: dict[str, list[Sweep]] = {"default": [], "one": []}
        for attempt in range(REPEATS):
            runs["default"].append(Sweep(tmp, f"small{seeds}-default-{attempt}", *args))
            runs["one"].append(Sweep(tmp, f"small{seeds}-one-{attempt}", *args, "hydra.launcher.n_jobs=1"))
        default, one = (min(sweep.seconds for sweep in runs[name]) for name in ("default", "one"))
        stacks = max(s["stacked_with"] for s in runs["default"][0].summaries()) + 1  # one process: one stack
        where = "one process" if stacks == seeds else "worker processes"
        ratios.append(one / default)
        rows += [
            (f"paper preset, {seeds} seeds x {epochs:,} epochs, batched, n_jobs=1 (best of {REPEATS})", one, "1.00x"),
            (f"  the same, default n_jobs (it chose {where})", default, f"{ratios[-1]:.2f}x"),
        ]
    notes.append(
        f"Targets: 5 seeds x 3,000 epochs no slower with the default worker count than with n_jobs=1: "
        f"{ratios[0]:.2f}x; 32 x 4,000 >= 1.6x faster: {ratios[1]:.2f}x."
    )


def bookkeeping_section(tmp: Path, rows: list, notes: list, jobs: int) -> None:
    def per_job(sweep: Sweep, n: int) -> tuple[float, float]:
        summaries = sweep.summaries()
        assert len(summaries) == n and all(s["status"] == "completed" for s in summaries)
        work = sum(s["train_seconds"] + s.get("probe_seconds", 0.0) for s in summaries)
        workers = len(os.sched_getaffinity(0))
        return sweep.seconds / n, (sweep.seconds - work / workers) / n

    sweeps = {}
    for n in (50, jobs):
        sweeps[n] = Sweep(tmp, f"book{n}", *PAPER, "trainer.epochs=10", f"seed=range(0,{n})", "hydra/launcher=batched")
    for n, sweep in sweeps.items():
        wall, beyond = per_job(sweep, n)
        rows.append((f"batched sweep of {n} jobs x 10 epochs, W&B offline: wall per job", wall, ""))
        rows.append(("  of which beyond training and probes, per job", beyond, ""))
        rows.append(("  peak memory, whole process tree (MiB)", sweep.peak_tree_mb, ""))
        rows.append(("  peak memory, the launching process (MiB)", sweep.main_peak_mb, ""))
    _, beyond = per_job(sweeps[jobs], jobs)
    ratio = sweeps[jobs].peak_tree_mb / sweeps[50].peak_tree_mb
    notes.append(
        f"Targets: <= 50 ms per job beyond training and probes ({jobs:,} jobs): {beyond * 1000:.0f} ms; peak memory of "
        f"{jobs:,} jobs within 1.3x of 50 jobs: {ratio:.2f}x (process tree), "
        f"{sweeps[jobs].main_peak_mb / sweeps[50].main_peak_mb:.2f}x (launching process)."
    )


def start_section(tmp: Path, rows: list, notes: list) -> None:
    def first_summary(sweep: Sweep) -> bool:
        return next(sweep.dir.glob("*/summary.json"), None) is not None

    sweep = Sweep(
        tmp,
        "start10000",
        *PAPER,
        "trainer.epochs=10",
        "probe=none",
        "seed=range(0,10000)",
        "hydra/launcher=batched",
        stop_when=first_summary,
    )
    started = min(s["train_started_at"] for s in sweep.summaries() if s["status"] == "completed")  # not interrupted
    rows.append(("10,000-job sweep: launch to its first training", started - sweep.launched, ""))
    notes.append(f"Target: a 10,000-job sweep starts training within 10 s: {started - sweep.launched:.1f} s.")


def probe_share(summaries: list[dict]) -> float:
    return sum(s["probe_seconds"] for s in summaries) / sum(s["train_seconds"] for s in summaries)


def paper_section(tmp: Path, rows: list, notes: list, seeds: int, basic_seeds: int) -> None:
    sweep_seeds = f"seed=range(0,{seeds})"
    all_cores = Sweep(tmp, "paper-batched", *PAPER, sweep_seeds, "hydra/launcher=batched")
    one = Sweep(tmp, "paper-batched-1", *PAPER, sweep_seeds, "hydra/launcher=batched", "hydra.launcher.n_jobs=1")
    basic = Sweep(tmp, "paper-basic", *PAPER, f"seed=range(0,{basic_seeds})", "hydra/launcher=basic")
    basic_per_run = basic.seconds / basic_seeds
    rows += [
        (
            f"paper preset, {seeds} seeds end to end: basic launcher (per run, from {basic_seeds} seeds)",
            basic_per_run,
            "1.00x",
        ),
        (
            "  batched launcher, one process (per run)",
            one.seconds / seeds,
            f"{basic_per_run * seeds / one.seconds:.2f}x",
        ),
        (
            "  batched launcher, all cores (per run)",
            all_cores.seconds / seeds,
            f"{basic_per_run * seeds / all_cores.seconds:.2f}x",
        ),
    ]
    summaries = all_cores.summaries()
    probe = probe_share(summaries)
    rows.append(("  stacked gradient_line probe per run, share of training", probe, ""))
    exact = Sweep(
        tmp, "paper-exact-probe", *PAPER, sweep_seeds, "hydra/launcher=batched", "probe.gradient_line.exact=true"
    )
    exact_probe = probe_share(exact.summaries())
    rows.append(("  the same with exact grid derivatives (probe.gradient_line.exact=true)", exact_probe, ""))
    fast = Sweep(tmp, "paper-compiled", *PAPER, sweep_seeds, "hydra/launcher=batched", "trainer.compile=true")
    rows.append(
        (
            "  batched launcher, all cores, trainer.compile=true (per run)",
            fast.seconds / seeds,
            f"{basic_per_run * seeds / fast.seconds:.2f}x",
        )
    )
    compiled_probe = probe_share(fast.summaries())
    rows.append(("  stacked gradient_line probe per run, share of compiled training", compiled_probe, ""))
    counts = {}
    for name, sweep_summaries in (("eager", summaries), ("compiled", fast.summaries())):
        in_range = [PUBLISHED[0] <= (s["final_loss"] or float("inf")) <= PUBLISHED[1] for s in sweep_summaries]
        counts[name] = (
            f"seeds 0-4: {sum(in_range[:5])} of 5, {seeds} seeds: {sum(in_range)} ({sum(in_range) / seeds:.0%})"
        )
    notes.append(
        f"Targets: all cores >= 1.8x one process: {one.seconds / all_cores.seconds:.2f}x; >= 4x basic: "
        f"{basic_per_run * seeds / all_cores.seconds:.2f}x (basic per run measured on {basic_seeds} seeds; its jobs "
        f"run one after another, so its time is linear in the seeds). Stacked probe <= 3% of training: {probe:.1%} "
        f"(finite differences, the default; {compiled_probe:.1%} of compiled training), {exact_probe:.1%} with the "
        f"exact grid derivatives. Final losses in [1e-12, 1e-9]: "
        f"eager {counts['eager']}; compiled (rational tanh) {counts['compiled']}."
    )


def reprobe_section(tmp: Path, rows: list, notes: list, jobs: int) -> None:
    """A batched sweep of the paper preset, then `python -m nesterov_landscape.reprobe` of it with the
    hessian probe: per job, beside training it."""
    sweep = Sweep(tmp, f"reprobe{jobs}", *PAPER, f"seed=range(0,{jobs})", "hydra/launcher=batched")
    trained = sweep.summaries()
    assert len(trained) == jobs and all(s["status"] == "completed" for s in trained)
    command = [sys.executable, "-m", "nesterov_landscape.reprobe", str(sweep.dir), "probe=[hessian]", "--name", "h"]
    start = time.perf_counter()
    subprocess.run(command, cwd=tmp, env={**os.environ, "WANDB_SILENT": "true"}, check=True, capture_output=True)
    reprobe_per_job = (time.perf_counter() - start) / jobs
    probed = [json.loads(p.read_text()) for p in sweep.dir.glob("*/reprobe/h/summary.json")]
    assert len(probed) == jobs and all("hessian_lambda_max" in s for s in probed)
    hessian = sum(s["probe_seconds"] for s in probed) / jobs
    rows += [
        (
            f"paper preset, {jobs}-job batched sweep, all cores: wall per job (training and gradient_line)",
            sweep.seconds / jobs,
            "1.00x",
        ),
        (
            "  re-probed with probe=[hessian], one process: wall per job",
            reprobe_per_job,
            f"{sweep.seconds / jobs / reprobe_per_job:.2f}x",
        ),
        ("  of which the hessian probe per job", hessian, ""),
    ]
    notes.append(
        f"Re-probing the {jobs}-job sweep with the hessian probe took {reprobe_per_job:.2f} s a job in one process, "
        f"against {sweep.seconds / jobs:.2f} s a job to train and probe it on all cores: no retraining."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--only", nargs="+", choices=["step", "small", "bookkeeping", "start", "paper", "reprobe"])
    parser.add_argument("--seeds", type=int, default=100, help="seeds of the paper preset (default 100)")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs of the large bookkeeping sweep (default 2000)")
    parser.add_argument("--basic-seeds", type=int, default=20, help="seeds for the basic launcher (default 20)")
    parser.add_argument("--peer-epochs", type=int, default=1000, help="epochs the peers train (default 1000)")
    parser.add_argument("--reprobe-jobs", type=int, default=200, help="jobs of the re-probed sweep (default 200)")
    args = parser.parse_args()
    sections = args.only or ["step", "small", "bookkeeping", "start", "paper", "reprobe"]
    register_configs()
    torch.set_num_threads(1)
    rows: list[tuple[str, float, str]] = []
    notes: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "step" in sections:
            step_section(rows, notes, args.peer_epochs)
        if "small" in sections:
            small_section(tmp, rows, notes)
        if "bookkeeping" in sections:
            bookkeeping_section(tmp, rows, notes, args.jobs)
        if "start" in sections:
            start_section(tmp, rows, notes)
        if "paper" in sections:
            paper_section(tmp, rows, notes, args.seeds, args.basic_seeds)
        if "reprobe" in sections:
            reprobe_section(tmp, rows, notes, args.reprobe_jobs)
    lines = [
        f"# make bench, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {machine()}.",
        "",
        "The paper preset: 10 hidden layers of width 35, 100 points, 10,000 full-batch epochs, float32, "
        "one torch thread per job or worker, W&B offline. Sections: " + ", ".join(sections) + f"; "
        f"{time.perf_counter() - start:.0f} s in all.",
        "",
        "| what | seconds (or MiB) | speed-up |",
        "|---|---|---|",
        *[f"| {name} | {value:.3f} | {ratio} |" for name, value, ratio in rows],
        *[line for note in notes for line in ("", note)],  # a paragraph each
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
