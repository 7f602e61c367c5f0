"""Per-run and per-group tables: which keys vary, epochs to reach a loss, duplicates, summaries."""

import math

import numpy as np
import pandas as pd

from nesterov_landscape.job_files import NOT_RESULT_KEYS  # no torch: the job's own rule, shared

from nesterov_landscape.summary_schema import radius_key

from .load import STATUSES, Sweep, listed_radii

LOSS_THRESHOLDS = (1e-3, 1e-6, 1e-9)
STATUS_ORDER = {status: i for i, status in enumerate(STATUSES)}


def is_seed(key: str) -> bool:
    return key == "seed" or key.endswith(".seed")


def identity_keys(sweep: Sweep) -> list[str]:
    """Config keys that decide a run's result: all but those the job ignores too (the logger's,
    trainer.resume, trainer.overwrite, trainer.max_memory_gb)."""
    return [k for k in sweep.config_keys if not any(k == n or k.startswith(f"{n}.") for n in NOT_RESULT_KEYS)]


def varying_keys(sweep: Sweep) -> list[str]:
    runs = sweep.runs
    return [k for k in identity_keys(sweep) if runs[k].nunique(dropna=True) > 1]


def group_keys(sweep: Sweep, by: list[str] | None = None) -> list[str]:
    """--by if given, else the varying config keys except the seeds and except keys that the others
    already determine (sweeping optimizer=nag,adam varies optimizer.lr too: the group is the name)."""
    if by:
        unknown = [k for k in by if k not in sweep.runs.columns]
        if unknown:
            raise ValueError(
                f"--by {', '.join(unknown)}: not a config key of these runs; "
                f"varying keys: {', '.join(varying_keys(sweep)) or 'none'}"
            )
        return by
    kept: list[str] = []
    for key in sorted((k for k in varying_keys(sweep) if not is_seed(k)), key=lambda k: not k.endswith(".name")):
        if not kept or sweep.runs.groupby(kept, dropna=False)[key].nunique(dropna=True).max() > 1:
            kept.append(key)
    return kept


def natural_key(value) -> tuple:
    """Sort key for a config value: numbers by value (depth 5 before 10, also when W&B or a label
    gives them as text), then text, then missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0.0, "")
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def sort_by_keys(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows ordered by `keys` with natural_key: the order of every table, legend and panel."""
    if not keys or frame.empty:
        return frame
    order = sorted(frame.index, key=lambda i: tuple(natural_key(frame.at[i, k]) for k in keys))
    return frame.loc[order]


def threshold_label(threshold: float) -> str:
    return f"epochs_to_{threshold:.0e}".replace("e-0", "e-")


def epochs_to_reach(history: pd.DataFrame, threshold: float) -> float:
    """The first logged epoch with loss <= threshold; inf if never."""
    hit = history["epoch"][history["loss"] <= threshold]
    return float(hit.iloc[0]) if len(hit) else math.inf


def add_derived_columns(sweep: Sweep) -> None:
    """Epochs to reach each loss threshold, and duplicate detection (same config and seed)."""
    runs = sweep.runs
    for threshold in LOSS_THRESHOLDS:
        runs[threshold_label(threshold)] = [
            epochs_to_reach(sweep.histories[r], threshold) if r in sweep.histories else math.nan for r in runs["run_id"]
        ]
    identity = runs[identity_keys(sweep)].map(str).agg("|".join, axis=1)
    # Of a set of duplicates keep the most finished one (completed over diverged over failed ...).
    kept = identity[runs["status"].map(STATUS_ORDER).sort_values(kind="stable").index].drop_duplicates()
    runs["duplicate"] = ~runs.index.isin(kept.index)
    kept_dir = pd.Series(runs.loc[kept.index, "job_dir"].to_numpy(), index=kept.to_numpy())
    for idx in runs.index[runs["duplicate"]]:
        sweep.problems.append(
            f"duplicate job {runs.at[idx, 'job_dir']}: same config and seed as "
            f"{kept_dir[identity[idx]]} (kept that one)"
        )


def _geomean(values: pd.Series) -> float:
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(values).mean())) if len(values) else math.nan


def summarize(sweep: Sweep, keys: list[str], radius: float | None) -> pd.DataFrame:
    """One row per group (every combination of `keys`); duplicates left out. The shares of runs with
    phi'' > 0 and mu > 0 are over |t| <= radius (shares.landscape_radius); the medians of mu's minima
    over every radius the runs list."""
    runs = sweep.runs[~sweep.runs["duplicate"]]
    near = radius_key(radius) if radius is not None else None
    minima = [f"mu_min_{radius_key(r)}" for r in sorted(listed_radii(runs))]
    grouped = runs.groupby(keys, dropna=False, sort=False) if keys else [((), runs)]
    rows = []
    for values, group in grouped:
        values = values if isinstance(values, tuple) else (values,)
        row = dict(zip(keys, values))
        row["runs"] = len(group)
        for status in STATUSES:
            row[status] = int((group["status"] == status).sum())
        finished = group[group["status"] == "completed"]
        losses = finished.get("final_loss", pd.Series(dtype=float)).astype(float)
        row["final_loss_geomean"] = _geomean(losses)
        row["final_loss_median"] = losses.median()
        row["final_loss_min"] = losses.min()
        row["final_loss_max"] = losses.max()
        for threshold in LOSS_THRESHOLDS:
            label = threshold_label(threshold)
            row[f"{label}_median"] = group[label].dropna().median()
        for name in ("phi_dd", "mu") if near is not None else ():
            column = f"{name}_min_{near}"
            probed = finished[column].dropna() if column in finished else pd.Series(dtype=float)
            row[f"frac_{name}_pos_{near}"] = float((probed > 0).mean()) if len(probed) else math.nan
        for column in ("phi_dd_at_0", *minima):
            row[f"{column}_median"] = finished[column].median() if column in finished else math.nan
        rows.append(row)
    return sort_by_keys(pd.DataFrame(rows), keys).reset_index(drop=True)


def metric_medians(sweep: Sweep, keys: list[str]) -> pd.DataFrame:
    """The median of every numeric metric of completed runs, per group: new metrics appear here
    without code changes."""
    runs = sweep.runs[~sweep.runs["duplicate"] & (sweep.runs["status"] == "completed")]
    config = set(sweep.config_keys) | {"run_id", "job_dir", "duplicate"}
    metrics = [c for c in runs.columns if c not in config and pd.api.types.is_numeric_dtype(runs[c])]
    if runs.empty or not metrics:
        return pd.DataFrame(columns=[*keys, *metrics])
    if not keys:
        return runs[metrics].median().to_frame().T
    medians = runs.groupby(keys, dropna=False)[metrics].median().reset_index()
    return sort_by_keys(medians, keys).reset_index(drop=True)


def format_value(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "never" if value > 0 else "-inf"
        return f"{value:.3g}"
    return str(value)


def markdown_row(cells: list[str]) -> str:
    """One row of a markdown table; a `|` in a cell is escaped, else it would end the cell and break the row."""
    return "| " + " | ".join(cell.replace("|", r"\|") for cell in cells) + " |"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    rule = "|" + "|".join("---" for _ in header) + "|"
    return "\n".join([markdown_row(header), rule, *map(markdown_row, rows)]) + "\n"


def to_markdown(frame: pd.DataFrame) -> str:
    rows = [[format_value(v) for v in row] for row in frame.itertuples(index=False)]
    return markdown_table([str(c) for c in frame.columns], rows)


# Characters that LaTeX reads as commands, replaced in one pass: the braces of \textbackslash{} stay braces.
LATEX_ESCAPES = str.maketrans(
    {
        "\\": r"\textbackslash{}",
        "{": r"\{",
        "}": r"\}",
        "$": r"\$",
        "&": r"\&",
        "%": r"\%",
        "#": r"\#",
        "_": r"\_",
        "^": r"\textasciicircum{}",
        "~": r"\textasciitilde{}",
    }
)


def _latex_escape(text: str) -> str:
    return text.translate(LATEX_ESCAPES)


def to_latex(frame: pd.DataFrame) -> str:
    lines = [
        r"\begin{tabular}{" + "l" * len(frame.columns) + "}",
        r"\toprule",
        " & ".join(_latex_escape(str(c)) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(format_value(v)) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
