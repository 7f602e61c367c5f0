"""The analysis's text as its readers get it: LaTeX that compiles to the value written, markdown rows
that stay one row, and figures whose every text lies inside the figure."""

import re

import pandas as pd

from multirun_analysis.load import load_sweeps
from multirun_analysis.report import write_report
from multirun_analysis.tables import to_latex

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
