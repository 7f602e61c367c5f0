"""Seaborn figures of a sweep, each saved as PNG and PDF."""

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .load import Sweep  # noqa: E402
from .phase import phase_diagram  # noqa: E402
from .shares import Outcome  # noqa: E402
from .tables import sort_by_keys  # noqa: E402

MAX_PANELS = 12
COLUMNS = 4
TITLE_WIDTH = 50  # characters per line of a panel title: four swept keys would overlap the next panel
# characters per inch of figure width in a wrapped line of a figure's title (suptitle): its font,
# seaborn's "paper" context, runs about 13 to the inch; fewer leave a margin
SUPTITLE_CHARS_PER_INCH = 11
LEGEND_ROWS = 20  # entries in one column of a legend beside an 8 x 5 in plot; more start another column
PLOT_WIDTH = 6.5  # inches the plot of an 8 in figure takes with its axis labels; a legend is added to it
# mu's panels are scaled to |t| >= MU_VIEW_T. Closer to 0, mu(t) ~ phi'' - 2 (phi(0) - inf phi) / t^2:
# for a run whose loss phi(0) is far from inf phi (= 0 by default) that spike says only "not at a
# minimizer" and would squash every other curve to a flat line.
MU_VIEW_T = 0.1
MU_CAPTION = (
    f"mu axis fitted to |t| >= {MU_VIEW_T}; in the shaded |t| < {MU_VIEW_T}, "
    "mu(t) ~ phi'' - 2 (phi(0) - inf phi) / t^2 leaves the panel for runs not at a minimizer"
)


def group_labels(runs: pd.DataFrame, keys: list[str], named: bool = True) -> pd.Series:
    """Each run's group as "key=value, ..."; not `named`, "value, ..." (a legend names the keys once)."""
    if not keys:
        return pd.Series("all runs", index=runs.index)
    return runs[keys].map(str).apply(lambda row: ", ".join(f"{k}={v}" if named else v for k, v in row.items()), axis=1)


def ordered_groups(runs: pd.DataFrame, keys: list[str], named: bool = True) -> list[str]:
    """The group labels in numeric order of their key values (depth 5 before 10)."""
    return list(dict.fromkeys(group_labels(sort_by_keys(runs, keys), keys, named)))


def legend_beside(ax: plt.Axes, keys: list[str], handles: list, labels: list[str]) -> None:
    """The legend right of the plot, off the data: the keys once, one a line, in its title, and each
    entry their values; a column per LEGEND_ROWS entries, and the figure widened to hold them all, so
    that no number of groups leaves the figure (the phase study's 120 groups make six columns)."""
    legend = ax.legend(
        handles,
        labels,
        title="\n".join(keys),
        fontsize="small",
        title_fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        ncols=-(-len(labels) // LEGEND_ROWS),
    )
    fig = ax.figure
    legend_width = legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    fig.set_figwidth(max(fig.get_figwidth(), PLOT_WIDTH + legend_width))


def save(fig: plt.Figure, out: Path, name: str) -> list[str]:
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=150)
    plt.close(fig)
    return [f"{name}.png", f"{name}.pdf"]


def loss_curves(sweep: Sweep, runs: pd.DataFrame, keys: list[str]) -> plt.Figure | None:
    """Training loss against epoch: median over seeds, band from min to max, one color per group."""
    labels = group_labels(runs, keys)
    frames = [sweep.histories[r].assign(group=labels[i]) for i, r in runs["run_id"].items() if r in sweep.histories]
    if not frames:
        return None
    history = pd.concat(frames, ignore_index=True)
    history["loss"] = history["loss"].where(np.isfinite(history["loss"]))
    stats = history.groupby(["group", "epoch"])["loss"].agg(["median", "min", "max"]).reset_index()
    curves = dict(tuple(stats.groupby("group", sort=False)))
    groups = [g for g in ordered_groups(runs, keys) if g in curves]
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    palette = sns.color_palette(n_colors=len(groups))
    for color, group in zip(palette, groups):
        curve = curves[group]
        ax.fill_between(curve["epoch"], curve["min"], curve["max"], color=color, alpha=0.2, linewidth=0)
        ax.plot(curve["epoch"], curve["median"], color=color, label=group)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (one pass over the data)")
    ax.set_ylabel("training loss (median over seeds, band: min to max)")
    ax.set_title("Training loss")
    values = dict(zip(labels, group_labels(runs, keys, named=False)))
    legend_beside(ax, keys, ax.lines, [values[group] for group in groups])
    return fig


def fit_mu_axis(ax: plt.Axes, segments: list[np.ndarray]) -> None:
    """Scale a mu panel to |t| >= MU_VIEW_T (zero always in view: the sign is the question) and
    shade the region left out."""
    points = np.concatenate(segments)
    shown = points[(np.abs(points[:, 0]) >= MU_VIEW_T) & np.isfinite(points[:, 1]), 1]
    if len(shown):
        low, high = min(shown.min(), 0.0), max(shown.max(), 0.0)
        pad = 0.05 * (high - low) or 1.0
        ax.set_ylim(low - pad, high + pad)
    ax.axvspan(-MU_VIEW_T, MU_VIEW_T, color="grey", alpha=0.15, linewidth=0)


def landscape_panels(sweep: Sweep, runs: pd.DataFrame, keys: list[str]) -> plt.Figure | None:
    """Figure 3 of Gupta & Wojtowytsch: phi''(t) and mu(t) along the gradient line, one line per
    seed, a pair of panels per group (at most MAX_PANELS groups, COLUMNS pairs a row)."""
    runs = sort_by_keys(runs, [*keys, "seed"] if "seed" in runs else keys)  # seeds in order within a panel
    labels = group_labels(runs, keys)
    members = {g: [r for r in runs["run_id"][labels == g] if r in sweep.landscapes] for g in dict.fromkeys(labels)}
    probed = [g for g, ids in members.items() if ids]
    groups = probed[:MAX_PANELS]
    if not groups:
        return None
    columns = min(COLUMNS, len(groups))
    block_rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(
        2 * block_rows,
        columns,
        figsize=(max(7.0, 4.5 * columns), 6.5 * block_rows),
        squeeze=False,
        layout="constrained",
    )
    seed_of = runs.set_index("run_id")["seed"] if "seed" in runs else pd.Series(dtype=object)
    for i, group in enumerate(groups):
        top, bottom = axes[2 * (i // columns), i % columns], axes[2 * (i // columns) + 1, i % columns]
        ids = members[group]
        colors = sns.color_palette("tab10" if len(ids) <= 10 else "viridis", n_colors=len(ids))
        for ax, column in ((top, "phi_dd"), (bottom, "mu")):
            # One LineCollection per panel: a sweep of hundreds of seeds draws in a second, not minutes.
            segments = [sweep.landscapes[r][["t", column]].to_numpy() for r in ids]
            ax.add_collection(LineCollection(segments, colors=colors, linewidths=1))
            ax.autoscale()
            if column == "mu":
                fit_mu_axis(ax, segments)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_xlabel("t (step along the unit gradient)")
        top.set_ylabel(r"curvature $\varphi''(t)$ (central differences)")
        bottom.set_ylabel(r"strong aiming $\mu(t) = 2\,(t\varphi'(t) - \varphi(t) + \inf\varphi)\,/\,t^2$")
        top.set_title(textwrap.fill(f"{group} ({len(ids)} seeds)", TITLE_WIDTH), fontsize="small")
        if len(ids) <= 10:
            top.legend(
                handles=[Line2D([], [], color=c, label=f"seed {seed_of.get(r, '?')}") for c, r in zip(colors, ids)],
                fontsize="x-small",
            )
    for i in range(len(groups), block_rows * columns):
        axes[2 * (i // columns), i % columns].set_visible(False)
        axes[2 * (i // columns) + 1, i % columns].set_visible(False)
    shown = "" if len(groups) == len(probed) else f"; the first {len(groups)} of {len(probed)} groups shown"
    caption = textwrap.wrap(MU_CAPTION + shown, int(SUPTITLE_CHARS_PER_INCH * fig.get_figwidth()))
    title = r"Loss along the gradient at the trained weights: $\varphi(t) = L(w + t\,\nabla L/|\nabla L|)$"
    fig.suptitle("\n".join([title, *caption]))
    return fig


def loss_axis(keys: list[str]) -> str:
    """The x axis of final_loss_vs_key: the momentum when it is swept, else the first key."""
    return "optimizer.momentum" if "optimizer.momentum" in keys else keys[0]


def final_loss_vs_key(runs: pd.DataFrame, keys: list[str]) -> plt.Figure | None:
    """Final loss against the first swept key, one line per value of the others (median, min-max bars)."""
    finished = runs[(runs["status"] == "completed") & np.isfinite(runs.get("final_loss", np.nan))]
    if not keys or finished.empty:
        return None
    x = loss_axis(keys)
    hue_keys = [k for k in keys if k != x]
    data = finished.assign(series=group_labels(finished, hue_keys, named=False))
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    sns.pointplot(
        data=data,
        x=x,
        order=list(dict.fromkeys(sort_by_keys(finished, [x])[x])),
        y="final_loss",
        hue="series",
        hue_order=ordered_groups(finished, hue_keys, named=False) if hue_keys else None,
        estimator=np.median,
        errorbar=("pi", 100),
        dodge=0.2 if hue_keys else False,
        ax=ax,
        log_scale=(False, True),
    )
    ax.set_xlabel(x)
    ax.set_ylabel("final training loss (median over seeds, bars: min to max)")
    ax.set_title(f"Final loss against {x}")
    if hue_keys:
        legend_beside(ax, hue_keys, *ax.get_legend_handles_labels())
    else:
        ax.get_legend() and ax.get_legend().remove()
    return fig


def heatmap(runs: pd.DataFrame, keys: list[str]) -> plt.Figure | None:
    """Median log10 final loss over two swept keys."""
    finished = runs[(runs["status"] == "completed") & (runs.get("final_loss", np.nan) > 0)]
    if len(keys) != 2 or finished.empty:
        return None
    table = finished.assign(log10_loss=np.log10(finished["final_loss"])).pivot_table(
        index=keys[0], columns=keys[1], values="log10_loss", aggfunc="median"
    )
    fig, ax = plt.subplots(figsize=(1.2 * table.shape[1] + 3, 0.8 * table.shape[0] + 2), layout="constrained")
    sns.heatmap(
        table,
        annot=True,
        fmt=".1f",
        cmap="viridis_r",
        ax=ax,
        cbar_kws={"label": "log10 final loss (median over seeds)"},
    )
    ax.set_title("Final training loss")
    return fig


def make_figures(
    sweep: Sweep,
    keys: list[str],
    out: Path,
    shares: pd.DataFrame | None = None,
    outcomes: tuple[Outcome, ...] = (),
    phase_axes: list[str] | None = None,
) -> list[str]:
    """Every figure as PNG and PDF under `out`; returns the file names. The phase diagram needs the
    share table of `outcomes` (shares.share_table) and two swept keys."""
    sns.set_theme(style="whitegrid", context="paper")
    runs = sweep.runs[~sweep.runs["duplicate"]]
    named = {
        "loss_curves": loss_curves(sweep, runs, keys),
        "landscape": landscape_panels(sweep, runs, keys),
        "phase_diagram": phase_diagram(shares, keys, outcomes, phase_axes) if shares is not None else None,
    }
    if keys:
        named["final_loss_vs_" + loss_axis(keys).replace(".", "_")] = final_loss_vs_key(runs, keys)
    if len(keys) == 2:
        named[f"heatmap_{keys[0]}_{keys[1]}".replace(".", "_")] = heatmap(runs, keys)
    return [name for stem, fig in named.items() if fig is not None for name in save(fig, out, stem)]
