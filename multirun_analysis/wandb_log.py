"""The sweep's aggregate on W&B: one run of job_type `analysis` in the sweep's group, holding the
tables and figures, and Figure 3 and the loss curves of each group as tables with charts that
overlay the seeds, so that the group's dashboard shows the aggregate beside its jobs."""

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .figures import MAX_PANELS, MU_VIEW_T, group_labels, ordered_groups
from .load import Sweep
from .tables import sort_by_keys

DEFAULT_PROJECT = "nesterov-landscape"  # the harness's logger.project default
JOB_TYPE = "analysis"  # the analysis run's job_type: a reader of the group's runs tells it from the jobs'
FIGURE3_COLUMNS = ["run", "seed", "t", "phi_dd", "mu", "mu_view"]  # mu_view: mu where |t| >= MU_VIEW_T
LOSS_COLUMNS = ["run", "seed", "epoch", "log10_loss"]


@dataclass
class AnalysisRun:
    mode: str  # the mode used: offline, or online
    id: str
    group: str | None
    dir: str  # the run's files (offline: what `wandb sync` uploads)


def most_common(runs: pd.DataFrame, column: str) -> tuple[str | None, int]:
    """The most common non-empty value of a column and how many distinct values there are."""
    values = [v for v in runs.get(column, pd.Series(dtype=object)) if isinstance(v, str) and v]
    counts = Counter(values).most_common()
    return (counts[0][0] if counts else None), len(counts)


def group_members(runs: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(label, runs) of each group in the figures' order, seeds in order within a group."""
    runs = sort_by_keys(runs, [*keys, "seed"] if "seed" in runs else keys)
    labels = group_labels(runs, keys)
    return [(label, runs[labels == label]) for label in ordered_groups(runs, keys)]


def figure3_line(landscape: pd.DataFrame) -> pd.DataFrame:
    """A run's gradient line at its final weights (the last checkpoint), mu_view blank where |t| < MU_VIEW_T."""
    if "epoch" in landscape:
        landscape = landscape[landscape["epoch"] == landscape["epoch"].max()]
    return landscape[["t", "phi_dd", "mu"]].assign(mu_view=landscape["mu"].where(landscape["t"].abs() >= MU_VIEW_T))


def loss_line(history: pd.DataFrame) -> pd.DataFrame:
    """A run's training loss against epoch as log10: W&B's line chart has no log axis."""
    return history[["epoch"]].assign(log10_loss=np.log10(history["loss"].where(history["loss"] > 0)))


def run_lines(frames: dict[str, pd.DataFrame], members: pd.DataFrame, line, columns: list[str]) -> list[list[list]]:
    """For each run of `members` with a frame in `frames`, the rows of line(frame) with its run (job
    folder) and seed, as `columns`."""
    seeds = members["seed"] if "seed" in members else members["run_id"]
    return [
        line(frames[run_id]).assign(run=job_dir, seed=seed)[columns].astype(object).values.tolist()
        for run_id, job_dir, seed in zip(members["run_id"], members["job_dir"], seeds)
        if run_id in frames
    ]


def log_group_charts(run, sweep: Sweep, runs: pd.DataFrame, keys: list[str], problems: list[str]) -> None:
    """Per group (the first MAX_PANELS, as landscape.png): figure3/<group>/table of every probed run's
    landscape, with charts phi_dd and mu_view against t, and loss/<group>/table with log10_loss
    against epoch; one line per seed (per run where seeds repeat in a group)."""
    from nesterov_landscape.wandb_run import line_charts

    found = group_members(runs, keys)
    if len(found) > MAX_PANELS:
        problems.append(f"W&B holds Figure 3 and loss charts of the first {MAX_PANELS} of {len(found)} groups")
    for i, (label, members) in enumerate(found[:MAX_PANELS]):
        key = f"{i:02d}_" + re.sub(r"[^A-Za-z0-9=_-]+", "_", label).strip("_")  # W&B reads "." in a key as nesting
        stroke = "seed" if "seed" in members and members["seed"].is_unique else "run"
        if lines := run_lines(sweep.landscapes, members, figure3_line, FIGURE3_COLUMNS):
            charts = {"phi_dd": f"phi''(t): {label}", "mu_view": f"mu(t), |t| >= {MU_VIEW_T}: {label}"}
            line_charts(run, f"figure3/{key}", FIGURE3_COLUMNS, lines, "t", charts, stroke)
        if lines := run_lines(sweep.histories, members, loss_line, LOSS_COLUMNS):
            charts = {"log10_loss": f"log10 training loss: {label}"}
            line_charts(run, f"loss/{key}", LOSS_COLUMNS, lines, "epoch", charts, stroke)


def log_analysis(
    sweep: Sweep,
    runs: pd.DataFrame,
    keys: list[str],
    out: Path,
    tables: dict[str, pd.DataFrame],
    figures: list[str],
    answer: str,
    mode: str,
) -> AnalysisRun:
    """One W&B run in `mode` (offline or online, online falling back to offline) in the jobs' group
    (read from their summary.json), with every table as a wandb.Table (in the summary: a table in the
    history adds its size as charted keys), each group's Figure 3 and loss curves (log_group_charts),
    every PNG figure as an image, report.md as a file and the answer as the run's notes. Its files go
    to `out/wandb/`; problems go to sweep.problems."""
    import wandb

    # The harness's own start: offline by default, a bounded online start, the same fallback as a job.
    from nesterov_landscape.wandb_run import start_run

    problems = sweep.problems
    group, groups = most_common(runs, "wandb_group")
    if groups > 1:
        problems.append(f"the runs span {groups} W&B groups; the analysis run joins the most common, {group}")
    project, _ = most_common(runs, "logger.project")
    entity, _ = most_common(runs, "logger.entity")
    run, used = start_run(
        mode,
        init_timeout=30,
        dir=str(out),
        project=project or DEFAULT_PROJECT,
        entity=entity,
        group=group,
        job_type=JOB_TYPE,
        name="analysis",
        tags=["analysis"],
        notes=answer,
        config={"tables": list(tables), "figures": [f for f in figures if f.endswith(".png")]},
    )
    try:
        run.summary.update(
            {f"analysis/{name}": wandb.Table(dataframe=frame, allow_mixed_types=True) for name, frame in tables.items()}
        )
        log_group_charts(run, sweep, runs, keys, problems)
        run.log({f"figures/{f.removesuffix('.png')}": wandb.Image(str(out / f)) for f in figures if f.endswith(".png")})
        run.save(str(out / "report.md"), base_path=str(out), policy="now")
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return AnalysisRun(mode=used, id=run.id, group=group, dir=str(Path(run.dir).parent))
