"""python -m multirun_analysis [SWEEP ...] [--by KEYS] [--out DIR] [--phase-axes K1,K2] [--reprobe NAME]
[--wandb-mode MODE] | --wandb ENTITY/PROJECT --group NAME"""

import argparse
import os
import sys
import time
from pathlib import Path

from .load import load_sweeps
from .report import latest_sweep, write_report


class OneLineErrors(argparse.ArgumentParser):
    """A bad argument is one line naming it and its allowed values, without the usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def comma_list(text: str) -> list[str]:
    return [k for k in text.split(",") if k]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineErrors(
        prog="python -m multirun_analysis",
        description="Aggregate harness sweeps into summary tables, figures and report.md.",
    )
    parser.add_argument(
        "sweeps",
        nargs="*",
        type=Path,
        help="sweep folders (multirun/<date>/<time>) or job folders; default: the sweep under --root "
        "whose multirun.yaml was written last",
    )
    parser.add_argument(
        "--by",
        type=comma_list,
        help="comma-separated config keys to group by (default: every varying key but the seed)",
    )
    parser.add_argument(
        "--phase-axes",
        type=comma_list,
        metavar="ROW_KEY,COLUMN_KEY",
        help="the two grouping keys of the phase diagram's heatmaps (default: model.depth,model.width "
        "when both vary, else the first two grouping keys)",
    )
    parser.add_argument(
        "--wandb-mode",
        choices=["offline", "online", "disabled"],
        default="offline",
        help="log the tables and figures to one W&B run of job_type analysis in the sweep's group: "
        "offline (default; files in OUT/wandb, `wandb sync` uploads them), online, or disabled",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder, outside every job folder (default: <first sweep>/analysis, or <job>-analysis)",
    )
    parser.add_argument(
        "--reprobe",
        metavar="NAME",
        help="analyse the jobs' re-probe NAME (<job>/reprobe/NAME/, docs/reprobe.md) instead of their own probes",
    )
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read online runs from W&B instead of folders")
    parser.add_argument("--group", help="with --wandb: the W&B group (summary.json's wandb.group)")
    parser.add_argument("--workers", type=int, default=8, help="threads reading job files (default 8)")
    parser.add_argument("--root", type=Path, default=Path("multirun"), help="where to look for the newest sweep")
    return parser.parse_args(argv)


MAX_WORKERS = 256


def job_folder_holding(path: Path) -> Path | None:
    """The job folder (a folder with .hydra/) that is `path` or holds it, if any."""
    resolved = path.resolve()
    return next((p for p in [resolved, *resolved.parents] if os.path.isdir(p / ".hydra")), None)


def default_out(source: Path, reprobe: str | None = None) -> Path:
    """<sweep>/analysis; for a job folder, <job>-analysis beside it: a job folder holds one job's
    files and W&B run, and a later analysis of its sweep would find a second run in it. A re-probe's
    analysis ends in -reprobe-<name>."""
    suffix = f"-reprobe-{reprobe}" if reprobe else ""
    if os.path.isdir(source / ".hydra"):
        job = source.resolve()  # a job folder given as "." has no name of its own
        return job.with_name(f"{job.name}-analysis{suffix}")
    return source / f"analysis{suffix}"


def out_dir_error(out: Path) -> str | None:
    """Why the report cannot go to `out`, checked before any file is read: the folder, or the
    nearest part of its path that exists, must be a writable folder outside every job folder."""
    job = job_folder_holding(out)
    if job:
        return (
            f"--out {out} is inside the job folder {job}, which holds one job's files and W&B run only; "
            "allowed: a folder outside every job folder (a folder with .hydra/), e.g. the default <sweep>/analysis"
        )
    existing = next(p for p in [out, *out.parents] if p.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        return f"--out {out}: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"--out {out}: {existing} is not writable"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    problem = out_dir_error(args.out) if args.out else None
    if not 1 <= args.workers <= MAX_WORKERS:
        problem = f"--workers {args.workers} is not allowed; it must be an integer from 1 to {MAX_WORKERS}"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = args.out
    try:
        if args.wandb:
            from .wandb_source import load_wandb_group

            if not args.group:
                raise ValueError("--wandb needs --group NAME (the sweep's W&B group)")
            sweep = load_wandb_group(args.wandb, args.group)
            sources = [f"wandb:{args.wandb}/{args.group}"]
            out = args.out or Path("reports") / f"wandb_{args.group}"
        else:
            sweep_dirs = args.sweeps or [latest_sweep(args.root)]
            sweep = load_sweeps(sweep_dirs, workers=args.workers, reprobe=args.reprobe)
            sources = [str(s) for s in sweep_dirs]
            out = args.out or default_out(sweep_dirs[0], args.reprobe)
        if sweep.runs.empty:
            raise FileNotFoundError(f"no runs found in {', '.join(sources)}")
        analysis = write_report(
            sweep, out, by=args.by, sources=sources, phase_axes=args.phase_axes, wandb_mode=args.wandb_mode
        )
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # writing the report: a full disk, a folder made read-only meanwhile
        print(f"error: cannot write the report to {out}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(analysis.summary_md)
    print(analysis.shares_md)
    print(analysis.answer_md)
    for problem in sweep.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if analysis.wandb_run:
        run = analysis.wandb_run
        print(f"W&B: analysis run {run.id} ({run.mode}, group {run.group}) in {run.dir}")
    print(f"{len(sweep.runs)} runs analysed in {time.perf_counter() - start:.1f} s; report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
