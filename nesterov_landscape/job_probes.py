"""A job's probes, whichever are selected (nesterov_landscape/probes/): each runs at a Point, and
what it returns becomes the job's files, W&B tables and summary entries here, alike for all."""

from dataclasses import replace
from pathlib import Path
from typing import Any

from .job_files import write_csv
from .probes import PROBES, Point, ProbeOutput, Table, WandbTable, run_order
from .wandb_run import log_table


class ProbeRecords:
    """The rows the runs of a job's probes add to its files and W&B tables, at checkpoints and at
    the end; written and logged together once the probes are done (a W&B table logged once, in the
    run's summary: see wandb_run.line_charts)."""

    def __init__(self) -> None:
        self.files: dict[str, Table] = {}
        self.wandb: dict[str, WandbTable] = {}

    def add(self, probe: str, output: ProbeOutput) -> None:
        undeclared = sorted(set(output.files) - set(PROBES[probe].files))
        if undeclared:  # the job owns only the files its probes declare (job_files.RESULT_FILES)
            raise ValueError(f"probe {probe} wrote {undeclared[0]}, which it does not declare in its files")
        for name, table in output.files.items():
            extend(self.files, name, table)
        for table in output.wandb:
            extend(self.wandb, table.key, table)

    def write(self, folder: Path) -> None:
        for name, table in self.files.items():
            if table.rows:
                write_csv(folder / name, table.columns, table.rows)

    def log(self, wandb_run: Any) -> None:
        for table in self.wandb.values():
            if table.rows:
                log_table(wandb_run, table)


def extend(tables: dict[str, Table], name: str, table: Table) -> None:
    """tables[name] with table's rows added (a copy of `table` the first time)."""
    if name in tables:
        tables[name].rows += table.rows
    else:
        tables[name] = replace(table, columns=list(table.columns), rows=list(table.rows))


def history_entries(selected: dict[str, Any], row: dict[str, float]) -> dict[str, float]:
    """What the selected probes add to a history row."""
    out: dict[str, float] = {}
    for name, config in selected.items():
        if PROBES[name].history is not None:
            out |= PROBES[name].history(config, row)
    return out


def probe(name: str, config: Any, at: Point, records: ProbeRecords) -> ProbeOutput:
    """One probe at `at`, its output added to `records`."""
    output = PROBES[name].run(config, at)
    records.add(name, output)
    return output


def probe_checkpoint(selected: dict[str, Any], at: Point, records: ProbeRecords) -> None:
    """The probes due at a checkpoint during training (their `every`); their summary entries are the end's."""
    due = [name for name, config in selected.items() if (every := PROBES[name].every(config)) and at.epoch % every == 0]
    for name in run_order(due):
        probe(name, selected[name], at, records)


def probe_trained(
    selected: dict[str, Any], at: Point, stacked: dict[str, Any], records: ProbeRecords
) -> dict[str, Any]:
    """The selected probes at the trained weights (`stacked`: those its stack computed); their
    summary entries. Each probe sees the summary entries and W&B tables of those run before it."""
    out: dict[str, Any] = {}
    tables: list[WandbTable] = []
    for name in run_order(list(selected)):
        if PROBES[name].run is not None:
            here = replace(at, summary=dict(out), wandb=list(tables), stacked=stacked.get(name))
            output = probe(name, selected[name], here, records)
            out |= output.summary
            tables += output.wandb
    return out
