"""Landscape probes, one module each, as the optimizers are: the probe named N is selected with
probe=[N], configured under probe.N, and registered by its module with `register`.

A module registers its probe's config dataclass (its fields are the keys under `probe.N`;
conf/probe/N.yaml holds their defaults and names the schema, `/schema/probe/N@N`) and the hooks
below. `run(config, at)` probes the weights `at` (a Point) and returns a ProbeOutput, which says as
data what it found: rows of CSV files, W&B tables with line plots, summary entries. The job writes
and logs them (job_probes.py), so no probe imports W&B or writes a file. Adding a probe is one
module here and conf/probe/N.yaml. A probe kept outside this repository is a module in a folder
`nesterov_landscape_probes/` anywhere on sys.path (a namespace package, as Hydra's plugins in
`hydra_plugins/`), its YAML in a folder on Hydra's search path (hydra.searchpath).

The modules import no torch at the top: config.py builds the config schemas from their dataclasses,
which `python -m nesterov_landscape --help` needs without paying for torch. Their `run` imports it
with the numerics.
"""

import importlib
import importlib.util
import math
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

EXTERNAL_PACKAGE = "nesterov_landscape_probes"


@dataclass
class Table:
    """The rows a probe adds to a CSV file of the job folder."""

    columns: list[str]
    rows: list[list[Any]]


@dataclass
class WandbTable(Table):
    """Rows for the W&B table `<key>/table` of the job's run, with a line chart `<key>/<y>` of each
    column y in `plots` (to its title) against column x, one line per value of column `line` (None:
    one line). Every run of a job's probe, at checkpoints and at the end, adds to the one table."""

    key: str
    x: str
    plots: dict[str, str]
    line: str | None = None


@dataclass
class ProbeOutput:
    summary: dict[str, Any] = field(default_factory=dict)  # summary.json entries; scalars reach W&B's summary
    files: dict[str, Table] = field(
        default_factory=dict
    )  # file name -> rows; every run of a job's probe adds to one file
    wandb: list[WandbTable] = field(default_factory=list)


@dataclass
class Point:
    """Where a probe runs: a job's weights after `epoch` epochs, in the training precision."""

    weights: Any  # (P,) tensor
    epoch: int
    loss_in: Callable[[Any], Callable]  # a torch dtype -> the job's loss in it, of weights (P,) or (B, P)
    train_dtype: Any
    seed: int  # the job's seed
    summary: dict[str, Any] = field(default_factory=dict)  # the entries of the probes run before (see `reads`)
    wandb: list[WandbTable] = field(default_factory=list)  # the W&B tables of the probes run before (`reads`)
    stacked: Any = None  # what `stacked` computed for this run in its stack, if it did

    def dtype(self, precision: str | None) -> Any:
        """A probe's precision key as a torch dtype; null: the training precision."""
        import torch  # only when probing: see the module's docstring

        return getattr(torch, precision) if precision else self.train_dtype

    def derived_seed(self, stream: str) -> int:
        """An independent seed from the job's, for a probe's random draws (a probe's own seed: null)."""
        from ..numerics.seeds import derive_seed

        return derive_seed(self.seed, stream)


@dataclass(frozen=True)
class Probe:
    name: str
    config: type  # the dataclass of probe.<name>
    run: Callable[[Any, Point], ProbeOutput] | None = None  # at the trained weights of a completed run
    files: tuple[str, ...] = ()  # every file run's output may name: the job's own files (job_files)
    # Epochs between runs during training too (0: only at the end). A job that probes during
    # training trains alone, not stacked: its stack trains without checkpoints.
    every: Callable[[Any], int] = lambda config: 0
    # entries a history row gains (`history(config, row)`), logged and written with the loss; the
    # last row's are the summary's final_<entry>
    history: Callable[[Any, dict[str, float]], dict[str, float]] | None = None
    # memory(config, job) -> {what allocates it, naming the keys that size it: bytes}, for the
    # arrays a run takes; job is a limits.JobSize. Each name starts with "probe.<name>".
    memory: Callable[[Any, Any], dict[str, float]] = lambda config, job: {}
    # stacked(config, loss_rows, weights): the probe of several completed runs of a stack at once
    # (weights (B, P), loss_rows as numerics.lines.line_profiles takes it), one Point.stacked per
    # run; None where it cannot be. Only runs whose probe.<name> configs are equal share it.
    stacked: Callable[[Any, Callable, Any], list[Any] | None] | None = None
    # probes whose summary entries and W&B tables run reads (Point.summary, Point.wandb): they run first
    reads: tuple[str, ...] = ()
    # check(config, job) -> a one-line refusal naming the keys, for rules that tie the probe's
    # config to the job's (field rules are the dataclass's: config.py)
    check: Callable[[Any, Any], str | None] = lambda config, job: None


PROBES: dict[str, Probe] = {}


def register(name: str, config: type, **hooks: Any) -> None:
    PROBES[name] = Probe(name, config, **hooks)


def run_order(names: list[str]) -> list[str]:
    """The selected probes in the order selected, each after the selected probes it reads."""
    ordered: list[str] = []

    def add(name: str) -> None:
        if name not in ordered:
            for read in PROBES[name].reads:
                if read in names:
                    add(read)
            ordered.append(name)

    for name in names:
        add(name)
    return ordered


def checkpoint_every(selected: dict[str, Any]) -> int:
    """The epochs between checkpoints of a job's probes (their every's greatest common divisor; 0: none)."""
    return math.gcd(*(PROBES[name].every(config) for name, config in selected.items()))


def _packages() -> list[tuple[list[str], str]]:
    """(search path, module prefix) of this package and of the namespace package of probes kept elsewhere."""
    packages = [(list(__path__), __name__)]
    external = importlib.util.find_spec(EXTERNAL_PACKAGE)
    if external is not None and external.submodule_search_locations:
        packages.append((list(external.submodule_search_locations), EXTERNAL_PACKAGE))
    return packages


for _path, _prefix in _packages():
    for _module in pkgutil.iter_modules(_path):
        importlib.import_module(f"{_prefix}.{_module.name}")
