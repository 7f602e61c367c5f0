"""The phase diagram: heatmaps of the outcome shares over two swept keys (default: depth by width),
one column of panels per outcome, one row per combination of the other swept keys."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .shares import Outcome
from .tables import sort_by_keys

MAX_ROWS = 12
PREFERRED_AXES = ["model.depth", "model.width"]  # the study's map: rows depth, columns width


def choose_phase_axes(keys: list[str], requested: list[str] | None = None) -> list[str] | None:
    """[row key, column key] of the heatmaps: `requested` (checked by the caller), else depth by
    width when both are swept, else the first two swept keys; None with fewer than two."""
    if requested:
        return requested
    if all(k in keys for k in PREFERRED_AXES):
        return PREFERRED_AXES
    return keys[:2] if len(keys) >= 2 else None


def label_of(row: pd.Series, keys: list[str]) -> str:
    """A row of panels: one line per other key, so that the label fits beside a short heatmap."""
    return "\n".join(f"{k}={row[k]}" for k in keys) or "all runs"


def ordered_values(shares: pd.DataFrame, key: str) -> list[str]:
    return list(dict.fromkeys(sort_by_keys(shares, [key])[key].map(str)))


def phase_diagram(
    shares: pd.DataFrame, keys: list[str], outcomes: tuple[Outcome, ...], requested: list[str] | None = None
) -> plt.Figure | None:
    """One heatmap per (outcome, combination of the other keys): each cell the share of seeds of
    one group, annotated with successes/trials; a blank cell has no run that counts."""
    axes_keys = choose_phase_axes(keys, requested)
    if axes_keys is None or shares.empty:
        return None
    row_key, column_key = axes_keys
    others = [k for k in keys if k not in axes_keys]
    shares = shares.assign(
        _panel=shares.apply(label_of, axis=1, keys=others),
        _row=shares[row_key].map(str),
        _column=shares[column_key].map(str),
    )
    panels = list(dict.fromkeys(sort_by_keys(shares, others)["_panel"]))
    shown = panels[:MAX_ROWS]
    row_values, column_values = ordered_values(shares, row_key), ordered_values(shares, column_key)
    width = 0.75 * len(column_values) + 1.6
    height = 0.45 * len(row_values) + 1.1
    fig, grid = plt.subplots(
        len(shown),
        len(outcomes),
        figsize=(width * len(outcomes) + 1.2, height * len(shown) + 1.0),
        squeeze=False,
        layout="constrained",
    )
    for r, panel in enumerate(shown):
        members = shares[shares["_panel"] == panel].set_index(["_row", "_column"])
        for c, outcome in enumerate(outcomes):
            values = pd.DataFrame(np.nan, index=row_values, columns=column_values)
            notes = pd.DataFrame("", index=row_values, columns=column_values)
            for (row, column), group in members.iterrows():
                if group[f"{outcome.name}_n"] > 0:
                    values.at[row, column] = group[outcome.name]
                    notes.at[row, column] = f"{int(group[f'{outcome.name}_k'])}/{int(group[f'{outcome.name}_n'])}"
            ax = grid[r, c]
            sns.heatmap(
                values,
                vmin=0,
                vmax=1,
                cmap="viridis",
                annot=notes,
                fmt="",
                annot_kws={"fontsize": "x-small"},
                cbar=False,
                ax=ax,
            )
            ax.set_xlabel(column_key)
            ax.set_ylabel(f"{panel}\n{row_key}" if c == 0 else row_key, fontsize="small")
            if r == 0:
                ax.set_title(outcome.label, fontsize="small")
    fig.colorbar(grid[0, 0].collections[0], ax=grid, shrink=0.6, label="share of seeds")
    more = "" if len(shown) == len(panels) else f"; the first {len(shown)} of {len(panels)} rows"
    fig.suptitle(
        "Phase diagram: share of seeds per group (cell: successes/trials; 95% Wilson intervals in shares.csv)" + more,
        fontsize="medium",
    )
    return fig
