"""Write every table, figure and report.md of an analysis into one folder."""

from pathlib import Path

from .figures import make_figures
from .load import Sweep
from .tables import add_derived_columns, group_keys, metric_medians, summarize, to_latex, to_markdown, varying_keys


def write_report(sweep: Sweep, out: Path, by: list[str] | None = None, sources: list[str] | None = None) -> str:
    """Tables, figures and report.md under `out`; returns the summary as Markdown for the terminal."""
    out.mkdir(parents=True, exist_ok=True)
    add_derived_columns(sweep)
    keys = group_keys(sweep, by)
    summary = summarize(sweep, keys)
    medians = metric_medians(sweep, keys)
    sweep.runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    medians.to_csv(out / "metrics.csv", index=False)
    summary_md = to_markdown(summary)
    (out / "summary.md").write_text(summary_md)
    (out / "summary.tex").write_text(to_latex(summary))
    figures = make_figures(sweep, keys, out)
    (out / "problems.txt").write_text("".join(f"{p}\n" for p in sweep.problems))
    (out / "report.md").write_text(report_markdown(sweep, keys, summary_md, figures, sources or []))
    return summary_md


def report_markdown(sweep: Sweep, keys: list[str], summary_md: str, figures: list[str], sources: list[str]) -> str:
    runs = sweep.runs
    counts = runs["status"].value_counts()
    lines = [
        "# Sweep report",
        "",
        f"Sources: {', '.join(f'`{s}`' for s in sources) or '-'}",
        "",
        f"{len(runs)} runs: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("completed", "diverged", "failed", "missing"))
        + f"; {int(runs['duplicate'].sum())} duplicates left out of the tables.",
        "",
        f"Varying config keys: {', '.join(f'`{k}`' for k in varying_keys(sweep)) or 'none'}. "
        f"Grouped by: {', '.join(f'`{k}`' for k in keys) or 'nothing (one group)'}.",
        "",
        "## Summary",
        "",
        "Final losses over completed runs; `epochs_to_*`: the median over runs of the first logged epoch "
        "with loss at or below the threshold (`never` when most runs never got there); `frac_*_pos_0p1`: "
        "the share of probed runs with phi'' > 0 (mu > 0) everywhere on |t| <= 0.1.",
        "",
        summary_md,
        "Tables: [summary.csv](summary.csv), [summary.md](summary.md), [summary.tex](summary.tex), "
        "[runs.csv](runs.csv) (one row per run), [metrics.csv](metrics.csv) (median of every metric per group).",
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{name}]({name})\n" for name in figures if name.endswith(".png")]
    lines += ["## Problems", ""]
    lines += [f"- {p}" for p in sweep.problems] or ["none"]
    unfinished = runs[runs["status"].isin(["failed", "missing"])]
    if len(unfinished):
        lines += ["", "## Failed and missing runs", ""]
        lines += [
            f"- {r.status}: `{r.job_dir}`" + (f" ({r.error})" if isinstance(getattr(r, "error", None), str) else "")
            for r in unfinished.itertuples()
        ]
    return "\n".join(lines) + "\n"


def latest_sweep(root: Path) -> Path:
    """The newest multirun/<date>/<time> folder."""
    candidates = sorted(p.parent for p in root.glob("*/*/multirun.yaml"))
    if not candidates:
        raise FileNotFoundError(
            f"no sweep (a folder with multirun.yaml) under {root}/; run a --multirun first or name the sweep folder"
        )
    return candidates[-1]
