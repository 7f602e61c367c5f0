"""The analysis's text as its readers get it: LaTeX that compiles to the value written, markdown rows
that stay one row, and figures whose every text lies inside the figure."""

import re

import pandas as pd
import pytest
from matplotlib.axis import Tick
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from multirun_analysis.load import load_sweeps
from multirun_analysis.report import write_report
from multirun_analysis.tables import to_latex

from .figure_capture import captured_figures
from .synthetic import completed_summary, decaying_history, job_config, write_job, write_multirun_yaml


def test_latex_escapes_every_special_character_once():
    frame = pd.DataFrame({"key_1": [r"a\b{c}$&%#_^~"]})
    assert to_latex(frame) == (
        "\\begin{tabular}{l}\n"
        "\\toprule\n"
        "key\\_1 \\\\\n"
        "\\midrule\n"
        "a\\textbackslash{}b\\{c\\}\\$\\&\\%\\#\\_\\textasciicircum{}\\textasciitilde{} \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )


def markdown_cells(row: str) -> list[str]:
    """A markdown table row's cells as a renderer reads them: split at each `|` not escaped by `\\`."""
    return [cell.strip().replace(r"\|", "|") for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_a_cell_holding_a_pipe_keeps_its_markdown_row(tmp_path):
    """A config value with `|` in it (here model.activation) groups the runs; every markdown table row
    keeps as many cells as its header, and the value reads back whole."""
    sweep = tmp_path / "sweep"
    write_multirun_yaml(sweep, ["model.activation=tanh,a|b"])
    for num, activation in enumerate(["tanh", "a|b"]):
        config = job_config(8, 0)
        config["model"]["activation"] = activation
        summary = completed_summary(1e-10, 1.0, 1.0)
        write_job(sweep / str(num), config, [f"model.activation={activation}"], summary, decaying_history(1 / 100))
    write_report(load_sweeps([sweep]), tmp_path / "out")
    for name in ("summary.md", "shares.md"):
        header, rule, *rows = (tmp_path / "out" / name).read_text().splitlines()
        assert markdown_cells(header)[0] == "model.activation", name
        assert [markdown_cells(row)[0] for row in rows] == ["a|b", "tanh"], name
        assert all(len(markdown_cells(row)) == len(markdown_cells(header)) for row in [rule, *rows]), name


def grid_sweep(sweep, widths: list[int], momenta: list[float], seeds: list[int]):
    """Completed jobs over model.width x optimizer.momentum x seed, each with a history and a landscape."""
    axes = [f"model.width={','.join(map(str, widths))}", f"optimizer.momentum={','.join(map(str, momenta))}"]
    write_multirun_yaml(sweep, [*axes, f"seed={','.join(map(str, seeds))}"])
    jobs = [(w, m, s) for w in widths for m in momenta for s in seeds]
    for num, (width, momentum, seed) in enumerate(jobs):
        overrides = [f"model.width={width}", f"optimizer.momentum={momentum}", f"seed={seed}"]
        summary = completed_summary(10.0 ** -(8 + seed + num % 3), 1.0, 0.5)
        write_job(
            sweep / str(num), job_config(width, seed, momentum), overrides, summary, decaying_history(1 / 100), 2.0
        )
    return sweep


def texts_outside(figure) -> list[str]:
    """The texts of a saved figure that do not lie wholly inside it, with their extents in pixels. A tick
    label counts where its tick is drawn: matplotlib keeps ticks outside the axis's view, undrawn."""
    FigureCanvasAgg(figure)  # the analysis closed the figure: a canvas of its own draws it again, laid out
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    tick_labels = {id(label) for tick in figure.findobj(Tick) for label in (tick.label1, tick.label2)}
    drawn = {
        id(label)
        for ax in figure.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in axis._update_ticks()  # the ticks that Axis.draw draws
        for label in (tick.label1, tick.label2)
    }
    inside = figure.bbox.padded(1)  # a pixel for rounding
    return [
        f"{text.get_text()!r} at {text.get_window_extent(renderer).extents.round()} (figure: {inside.extents})"
        for text in figure.findobj(Text)
        if text.get_visible() and text.get_text() and (id(text) not in tick_labels or id(text) in drawn)
        if not inside.contains(*text.get_window_extent(renderer).min)
        or not inside.contains(*text.get_window_extent(renderer).max)
    ]


@pytest.mark.parametrize(
    "grid,titles",
    [
        # one group: the landscape is one pair of panels, its figure the narrowest (7 in)
        (([8], [0.99], [0, 1]), ["Loss along the gradient", "Training loss"]),
        # 36 groups: legends of 36 and 6 entries, a 6 x 6 heatmap and phase diagram, 12 of 36 landscape panels
        (
            ([8, 16, 35, 50, 80, 120], [0.5, 0.8, 0.9, 0.95, 0.99, 0.999], [0]),
            ["Final loss against", "Final training loss", "Loss along the gradient", "Phase diagram", "Training loss"],
        ),
        # 120 groups, as many as the phase study: a loss legend of six columns, one of 12 by momentum
        (
            (
                [8, 12, 16, 24, 35, 50, 64, 80, 100, 120],
                [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999, 0.999999],
                [0],
            ),
            ["Final loss against", "Final training loss", "Loss along the gradient", "Phase diagram", "Training loss"],
        ),
    ],
)
def test_every_text_of_every_figure_lies_inside_it(grid, titles, tmp_path):
    """Each figure at the size the analysis saves it: no title, label, tick label or legend entry runs
    off its edges (the landscape's two-line title once ran off both)."""
    with captured_figures() as figures:
        write_report(load_sweeps([grid_sweep(tmp_path / "sweep", *grid)]), tmp_path / "out")
    drawn = sorted((figure.get_suptitle() or figure.axes[0].get_title(), figure) for figure in figures)
    assert [title.startswith(start) for (title, _), start in zip(drawn, titles)] == [True] * len(titles)
    assert len(drawn) == len(titles)
    for title, figure in drawn:
        assert texts_outside(figure) == [], title
