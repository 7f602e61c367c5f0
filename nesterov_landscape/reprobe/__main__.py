"""`python -m nesterov_landscape.reprobe FOLDER... [OVERRIDE...] [--name NAME]`: probe finished jobs
again at their kept weights, without retraining (docs/reprobe.md). A FOLDER is a job folder or a
sweep folder holding job folders; an OVERRIDE is a key=value as the job's command line takes it."""

import argparse
import logging
import os
import re
import sys
from collections import Counter
from pathlib import Path

from ..config import ConfigError, register_configs
from ..job_files import REPROBE_DIR
from ..weights import WeightsError
from .overrides import OverrideError, Overrides, default_name, name_error, parse
from .run import NotReprobed, done, prepare, reprobe_job, stacked_results, stacks, trained

OVERRIDE = re.compile(r"[+~]*[A-Za-z_][\w.@/-]*=")
# a job's own refusals, one line each; the other jobs go on
REFUSED = (NotReprobed, ConfigError, OverrideError, WeightsError)


class OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineErrors(prog="python -m nesterov_landscape.reprobe", description=__doc__)
    parser.add_argument("args", nargs="+", metavar="FOLDER|OVERRIDE", help="job or sweep folders, and overrides")
    parser.add_argument("--name", help="the results' folder, <job>/reprobe/NAME (default: from the overrides)")
    parser.add_argument("--runs-per-stack", type=int, default=128, help="runs probed as one computation, at most")
    args = parser.parse_args(argv)
    # an argument that names an existing path is a folder, even with "=" in it (seed=1, a subdir)
    args.overrides = [a for a in args.args if OVERRIDE.match(a) and not os.path.lexists(a)]
    args.folders = [Path(a) for a in args.args if a not in args.overrides]
    if not args.folders:
        parser.error("no job or sweep folder given")
    if args.runs_per_stack < 1:
        parser.error(f"--runs-per-stack {args.runs_per_stack} is not allowed; it must be an integer >= 1")
    return args


def job_folders(folder: Path) -> list[Path]:
    """The folder itself if it is a job folder (summary.json or .hydra/), else the job folders in it."""
    if not folder.is_dir():
        raise NotReprobed("no such folder")
    if (folder / "summary.json").exists() or (folder / ".hydra").is_dir():
        return [folder]
    jobs = [p for p in folder.iterdir() if p.is_dir() and ((p / "summary.json").exists() or (p / ".hydra").is_dir())]
    if not jobs:
        raise NotReprobed("neither a job folder (with summary.json) nor a sweep folder holding job folders")
    return sorted(jobs, key=lambda p: (len(p.name), p.name))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    register_configs()
    try:
        overrides = parse(args.overrides)
    except OverrideError as error:
        print(f"error: {error}; nothing was re-probed", file=sys.stderr)
        return 2
    name = args.name or default_name(args.overrides)
    if (problem := name_error(name)) is not None:
        print(f"error: {problem}; nothing was re-probed", file=sys.stderr)
        return 2
    os.environ.setdefault("WANDB_SILENT", "true")
    console = logging.StreamHandler(sys.stderr)  # the console gets warnings, each re-probe's log all
    console.setLevel(logging.WARNING)
    package, root = logging.getLogger("nesterov_landscape"), logging.getLogger()
    saved = package.level
    root.addHandler(console)
    package.setLevel(logging.INFO)
    try:
        return reprobe_all(args.folders, name, overrides, args.runs_per_stack)
    finally:
        root.removeHandler(console)
        package.setLevel(saved)


def reprobe_all(folders: list[Path], name: str, overrides: Overrides, runs_per_stack: int) -> int:
    """Re-probe every job of `folders`; one line per job refused, a count at the end; the exit code."""
    import torch  # here, not at the top: --help and a bad override need none of it

    counts: Counter[str] = Counter()

    def refused(folder: Path, error: Exception) -> None:
        print(f"error: {folder}: {str(error).splitlines()[0]}", file=sys.stderr)
        counts["failed"] += 1

    prepared, notes = [], set()
    for folder in folders:
        try:
            jobs = job_folders(folder)
        except NotReprobed as error:
            refused(folder, error)
            continue
        for job in jobs:
            try:
                reprobe = prepare(job, name, overrides, torch.cuda.is_available())
            except REFUSED as error:
                refused(job, error)
                continue
            if done(reprobe) is not None:
                counts["already done"] += 1
                continue
            prepared.append(reprobe)
            notes.add(reprobe.version_note())
    for note in sorted(filter(None, notes)):
        print(f"warning: some jobs were {note}", file=sys.stderr)
    try:
        for stack in stacks(prepared, runs_per_stack):
            torch.set_num_threads(stack[0].config.trainer.threads)
            try:
                results = stacked_results(stack)
            except Exception as error:  # as a stack that cannot train together: its jobs one by one
                print(f"warning: {len(stack)} jobs not probed stacked ({error}); probing them alone", file=sys.stderr)
                results = [trained(reprobe) for reprobe in stack]
            for reprobe, result in zip(stack, results):
                try:
                    counts[reprobe_job(reprobe, result)] += 1
                except REFUSED as error:
                    refused(reprobe.job, error)
                except Exception as error:  # a probe's failure: this job's alone, recorded in its summary.json
                    refused(reprobe.job, RuntimeError(f"failed: {type(error).__name__}: {error}"))
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command to finish the re-probe {name}", file=sys.stderr)
        return 130
    done_counts = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
    print(f"{sum(counts.values())} jobs: {done_counts}; results in <job>/{REPROBE_DIR}/{name}/")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
