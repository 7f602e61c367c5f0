"""How long `multirun_analysis` takes on a synthetic sweep of 1,000 jobs in the harness's format:
10,000-epoch histories logged every 10 epochs (1,001 rows), 201-point landscapes, 5 widths x 2 momenta
x 100 seeds, written by tests/synthetic.py. Prints a table of the phases and their share.
Run from the repository root: .venv/bin/python -m benchmarks.analysis_1000_jobs"""

import shutil
import tempfile
import time
from pathlib import Path

from multirun_analysis.figures import make_figures
from multirun_analysis.load import load_sweeps
from multirun_analysis.report import write_report
from multirun_analysis.shares import landscape_radius
from tests.synthetic import (
    completed_summary,
    decaying_history,
    job_config,
    write_job,
    write_multirun_yaml,
)
from multirun_analysis.tables import add_derived_columns, group_keys, summarize


def build(sweep: Path) -> None:
    write_multirun_yaml(sweep, ["model.width=10,20,35,50,80", "optimizer.momentum=0.9,0.99", "seed=range(0,100)"])
    num = 0
    for width in (10, 20, 35, 50, 80):
        for momentum in (0.9, 0.99):
            for seed in range(100):
                write_job(
                    sweep / str(num),
                    job_config(width, seed, momentum),
                    [f"model.width={width}", f"optimizer.momentum={momentum}", f"seed={seed}"],
                    completed_summary(10.0 ** -(9 + seed % 3), 1.0, 0.5),
                    decaying_history(1 / (1000 + seed), epochs=10_000),
                    1.0 + seed / 100,
                    landscape_points=100,
                )
                num += 1


def main() -> None:
    root = Path(tempfile.mkdtemp())
    try:
        sweep = root / "sweep"
        start = time.perf_counter()
        build(sweep)
        print(f"built 1,000 synthetic jobs in {time.perf_counter() - start:.1f} s under {sweep}\n")
        phases = []
        start = time.perf_counter()
        loaded = load_sweeps([sweep])
        phases.append(("read all job files (8 threads)", time.perf_counter() - start))
        start = time.perf_counter()
        add_derived_columns(loaded)
        keys = group_keys(loaded)
        summarize(loaded, keys, landscape_radius(loaded.runs))
        phases.append(("tables (derived columns, summary)", time.perf_counter() - start))
        start = time.perf_counter()
        make_figures(loaded, keys, root)
        phases.append(("figures (PNG + PDF)", time.perf_counter() - start))
        start = time.perf_counter()
        write_report(load_sweeps([sweep]), root / "analysis")
        end_to_end = time.perf_counter() - start
        total = sum(t for _, t in phases)
        print("| phase | seconds | share |\n|---|---|---|")
        for name, seconds in phases:
            print(f"| {name} | {seconds:.2f} | {seconds / total:.0%} |")
        print(f"| sum of phases | {total:.2f} | 100% |")
        print(
            f"\nend to end (load + write_report, every table and figure): {end_to_end:.2f} s for "
            f"{len(loaded.runs)} jobs"
        )
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
