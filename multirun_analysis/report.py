"""Write every table, figure and report.md of an analysis into one folder, and optionally log them
to one W&B run in the sweep's group."""

import os
from dataclasses import dataclass
from pathlib import Path

from .answer import PRECISION, answer_markdown
from .figures import MU_CAPTION, make_figures
from .load import RESULTS, STATUSES, Sweep
from .phase import choose_phase_axes
from .shares import landscape_radius, outcomes_of, share_table, shares_markdown
from .tables import (
    add_derived_columns,
    group_keys,
    identity_keys,
    metric_medians,
    summarize,
    to_latex,
    to_markdown,
    varying_keys,
)
from .wandb_log import AnalysisRun, log_analysis

# Figure captions in report.md, by file name prefix; the landscape's is the mu-axis rule.
CAPTIONS = {
    "phase_diagram": "One column per outcome, one row per combination of the other swept keys; each cell is one "
    "group's share of seeds (successes/trials written in it, blank: no run counts).",
    "landscape": MU_CAPTION + ".",
}


@dataclass
class Analysis:
    summary_md: str  # for the terminal
    shares_md: str
    answer_md: str
    wandb_run: AnalysisRun | None


def check_phase_axes(phase_axes: list[str] | None, keys: list[str]) -> None:
    if phase_axes is None:
        return
    if len(phase_axes) != 2 or len(set(phase_axes)) != 2 or not set(phase_axes) <= set(keys):
        raise ValueError(
            f"--phase-axes {','.join(phase_axes)}: give two different grouping keys; "
            f"grouping keys: {', '.join(keys) or 'none'}"
        )


# Left in an output folder by the analysis: a later analysis may write there again. Any other folder
# that holds files is someone else's, and nothing of theirs is replaced.
OUT_MARKER = ".multirun_analysis"


def claim_out(out: Path) -> None:
    """Make `out` the analysis's folder, or raise ValueError if it holds files the analysis did not write."""
    if out.is_dir() and any(out.iterdir()) and not (out / OUT_MARKER).is_file():
        raise ValueError(
            f"--out {out} holds files the analysis did not write; allowed: a new or empty folder, or one an "
            "earlier analysis wrote"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / OUT_MARKER).write_text("written by python -m multirun_analysis; it may write here again\n")


def write_report(
    sweep: Sweep,
    out: Path,
    by: list[str] | None = None,
    sources: list[str] | None = None,
    phase_axes: list[str] | None = None,
    wandb_mode: str = "disabled",
) -> Analysis:
    """Tables, figures and report.md under `out`; with wandb_mode offline or online, also one W&B
    run of job_type analysis in the jobs' group holding them."""
    claim_out(out)
    add_derived_columns(sweep)
    keys = group_keys(sweep, by)
    check_phase_axes(phase_axes, keys)
    runs = sweep.runs[~sweep.runs["duplicate"]]
    outcomes = outcomes_of(runs)
    summary = summarize(sweep, keys, landscape_radius(runs))
    medians = metric_medians(sweep, keys)
    shares = share_table(runs, keys, outcomes)
    sweep.runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    medians.to_csv(out / "metrics.csv", index=False)
    shares.to_csv(out / "shares.csv", index=False)
    summary_md, shares_md = to_markdown(summary), shares_markdown(shares, keys, outcomes)
    (out / "summary.md").write_text(summary_md)
    (out / "summary.tex").write_text(to_latex(summary))
    (out / "shares.md").write_text(shares_md)
    figures = make_figures(sweep, keys, out, shares, outcomes, phase_axes)
    pair_keys = [k for k in identity_keys(sweep) if k != PRECISION]
    answer_md = answer_markdown(runs, keys, shares, pair_keys, outcomes)
    (out / "problems.txt").write_text("".join(f"{p}\n" for p in sweep.problems))
    (out / "report.md").write_text(
        report_markdown(sweep, keys, answer_md, shares_md, summary_md, figures, sources or [], phase_axes)
    )
    wandb_run = None
    if wandb_mode != "disabled":
        tables = {"shares": shares, "summary": summary, "metrics": medians, "runs": sweep.runs}
        try:
            wandb_run = log_analysis(sweep, runs, keys, out, tables, figures, answer_md, wandb_mode)
        except Exception as error:  # the files are written: a W&B failure must not lose them
            sweep.problems.append(f"logging the analysis to W&B failed: {type(error).__name__}: {error}")
    return Analysis(summary_md, shares_md, answer_md, wandb_run)


def report_markdown(
    sweep: Sweep,
    keys: list[str],
    answer_md: str,
    shares_md: str,
    summary_md: str,
    figures: list[str],
    sources: list[str],
    phase_axes: list[str] | None,
) -> str:
    runs = sweep.runs
    counts = runs["status"].value_counts()
    axes = choose_phase_axes(keys, phase_axes)
    lines = [
        "# Sweep report",
        "",
        answer_md,
        f"Sources: {', '.join(f'`{s}`' for s in sources) or '-'}",
        "",
        f"{len(runs)} runs: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
        + f"; {int(runs['duplicate'].sum())} duplicates left out of the tables.",
        "",
        f"Varying config keys: {', '.join(f'`{k}`' for k in varying_keys(sweep)) or 'none'}. "
        f"Grouped by: {', '.join(f'`{k}`' for k in keys) or 'nothing (one group)'}.",
        "",
        "## Shares of seeds",
        "",
        "Per group: successes/trials = share [95% Wilson interval]. Loss shares over runs with a result; "
        "landscape shares over completed, probed runs (mu only where |t| >= mu_cutoff)."
        + (f" Phase diagram: `{axes[0]}` by `{axes[1]}`." if axes else ""),
        "",
        shares_md,
        "Table: [shares.csv](shares.csv) (`<outcome>_k`, `_n`, the share, `_lo`, `_hi`).",
        "",
        "## Summary",
        "",
        "Final losses over completed runs; `epochs_to_*`: the median over runs of the first logged epoch "
        "with loss at or below the threshold (`never` when most runs never got there); `frac_*_pos_<r>`: "
        "the share of probed runs with phi'' > 0 (mu > 0) everywhere on |t| <= r, the radius of the shares.",
        "",
        summary_md,
        "Tables: [summary.csv](summary.csv), [summary.md](summary.md), [summary.tex](summary.tex), "
        "[runs.csv](runs.csv) (one row per run), [metrics.csv](metrics.csv) (median of every metric per group).",
        "",
        "## Figures",
        "",
    ]
    for name in figures:
        if name.endswith(".png"):
            caption = next((c for prefix, c in CAPTIONS.items() if name.startswith(prefix)), "")
            lines += [f"![{name}]({name})", "", *([caption, ""] if caption else [])]
    lines += ["## Problems", ""]
    lines += [f"- {p}" for p in sweep.problems] or ["none"]
    unfinished = runs[~runs["status"].isin(RESULTS)]
    if len(unfinished):
        lines += ["", "## Failed, interrupted and missing runs", ""]
        lines += [
            f"- {r.status}: `{r.job_dir}`" + (f" ({r.error})" if isinstance(getattr(r, "error", None), str) else "")
            for r in unfinished.itertuples()
        ]
    return "\n".join(lines) + "\n"


def latest_sweep(root: Path) -> Path:
    """The sweep under `root` whose multirun.yaml was written last. A sweep is a folder holding
    multirun.yaml, at any depth (multirun/<date>/<time>, or hydra.sweep.dir=multirun/my-sweep);
    its own folders (jobs, analysis) are not searched: a sweep of 10,000 jobs holds tens of thousands."""
    sweeps = []
    for folder, subfolders, files in os.walk(root):
        if "multirun.yaml" in files:
            sweeps.append(Path(folder))
            subfolders.clear()
    if not sweeps:
        raise FileNotFoundError(
            f"no sweep (a folder with multirun.yaml) under {root}/; run a --multirun first or name the sweep folder"
        )
    return max(sweeps, key=lambda sweep: ((sweep / "multirun.yaml").stat().st_mtime_ns, str(sweep)))
