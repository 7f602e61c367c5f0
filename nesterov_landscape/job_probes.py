"""A job's probes, whichever are selected (nesterov_landscape/probes/): each runs at a Point, and
what it returns becomes the job's files, W&B tables and summary entries here, alike for all."""

from dataclasses import replace
from pathlib import Path
from typing import Any

from .job_files import write_csv
from .probes import PROBES, Point, Table, run_order
from .wandb_run import log_table


class ProbeFiles:
    """The rows the runs of a job's probes add to its files, at checkpoints and at the end; written
    together once the probes are done."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}

    def add(self, probe: str, files: dict[str, Table]) -> None:
        undeclared = sorted(set(files) - set(PROBES[probe].files))
        if undeclared:  # the job owns only the files its probes declare (job_files.RESULT_FILES)
            raise ValueError(f"probe {probe} wrote {undeclared[0]}, which it does not declare in its files")
        for name, table in files.items():
            if name in self.tables:
                self.tables[name].rows += table.rows
            else:
                self.tables[name] = Table(list(table.columns), list(table.rows))

    def write(self, folder: Path) -> None:
        for name, table in self.tables.items():
            if table.rows:
                write_csv(folder / name, table.columns, table.rows)


def history_entries(selected: dict[str, Any], row: dict[str, float]) -> dict[str, float]:
    """What the selected probes add to a history row."""
    out: dict[str, float] = {}
    for name, config in selected.items():
        if PROBES[name].history is not None:
            out |= PROBES[name].history(config, row)
    return out


def probe(name: str, config: Any, at: Point, wandb_run: Any, files: ProbeFiles) -> dict[str, Any]:
    """One probe at `at`: its rows to `files`, its tables to W&B; returns its summary entries."""
    output = PROBES[name].run(config, at)
    files.add(name, output.files)
    for table in output.wandb:
        log_table(wandb_run, table, at.epoch)
    return output.summary


def probe_checkpoint(selected: dict[str, Any], at: Point, wandb_run: Any, files: ProbeFiles) -> None:
    """The probes due at a checkpoint during training (their `every`); their summary entries are the end's."""
    due = [name for name, config in selected.items() if (every := PROBES[name].every(config)) and at.epoch % every == 0]
    for name in run_order(due):
        probe(name, selected[name], at, wandb_run, files)


def probe_trained(
    selected: dict[str, Any], at: Point, stacked: dict[str, Any], wandb_run: Any, files: ProbeFiles
) -> dict[str, Any]:
    """The selected probes at the trained weights (`stacked`: those its stack computed); their
    summary entries."""
    out: dict[str, Any] = {}
    for name in run_order(list(selected)):
        if PROBES[name].run is not None:
            out |= probe(
                name, selected[name], replace(at, summary=dict(out), stacked=stacked.get(name)), wandb_run, files
            )
    return out
