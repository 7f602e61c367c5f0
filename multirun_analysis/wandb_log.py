"""The sweep's aggregate on W&B: one run of job_type `analysis` in the sweep's group, holding the
tables and figures, so that the group's dashboard shows the aggregate beside its jobs."""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DEFAULT_PROJECT = "nesterov-landscape"  # the harness's logger.project default
JOB_TYPE = "analysis"  # the analysis run's job_type: a reader of the group's runs tells it from the jobs'


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


def log_analysis(
    runs: pd.DataFrame,
    out: Path,
    tables: dict[str, pd.DataFrame],
    figures: list[str],
    answer: str,
    mode: str,
    problems: list[str],
) -> AnalysisRun:
    """One W&B run in `mode` (offline or online, online falling back to offline) in the jobs' group
    (read from their summary.json), with every table as a wandb.Table, every PNG figure as an image,
    report.md as a file and the answer as the run's notes. Its files go to `out/wandb/`."""
    import wandb

    # The harness's own start: offline by default, a bounded online start, the same fallback as a job.
    from nesterov_landscape.wandb_run import start_run

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
        run.log(
            {f"analysis/{name}": wandb.Table(dataframe=frame, allow_mixed_types=True) for name, frame in tables.items()}
            | {f"figures/{f.removesuffix('.png')}": wandb.Image(str(out / f)) for f in figures if f.endswith(".png")}
        )
        run.save(str(out / "report.md"), base_path=str(out), policy="now")
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return AnalysisRun(mode=used, id=run.id, group=group, dir=str(Path(run.dir).parent))
