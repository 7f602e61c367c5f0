"""The layers keep their boundaries: the numerics know nothing of Hydra or W&B, the analysis never
needs torch, the Hydra plugins import neither torch nor the app when Hydra discovers them, and
`--help` imports no torch. Each check imports in a fresh interpreter and reads sys.modules."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

from .helpers import ROOT


def modules_of(package: str) -> list[str]:
    """The package and every module under it, found by walking it (a new module is checked too)."""
    root = importlib.import_module(package)
    return [package, *(m.name for m in pkgutil.walk_packages(root.__path__, f"{package}."))]


# the numerics, and the probes' modules (their config, wiring and memory: the job imports W&B for them)
NUMERICS = modules_of("nesterov_landscape.numerics") + modules_of("nesterov_landscape.probes")


def imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", NUMERICS)
def test_the_numerics_import_neither_hydra_nor_wandb(module):
    assert not imported_after(f"import {module}") & {"hydra", "omegaconf", "wandb"}


def test_the_numerics_are_walked():
    assert {"nesterov_landscape.numerics.optimizers.adam", "nesterov_landscape.numerics.spectrum"} <= set(NUMERICS)
    assert {"nesterov_landscape.probes.gradient_line", "nesterov_landscape.probes.pl"} <= set(NUMERICS)


def test_the_analysis_never_imports_torch():
    assert "torch" not in imported_after("import multirun_analysis.__main__")


def test_the_probes_and_the_summary_schema_import_no_torch():
    """config.py composes its schemas from the probes' modules without torch (see --help below), and
    the analysis reads summaries with the schema."""
    assert "torch" not in imported_after("import nesterov_landscape.probes, nesterov_landscape.summary_schema")


def test_the_analysis_package_holds_only_what_the_tool_runs():
    """Every module of multirun_analysis is imported by `python -m multirun_analysis` (wandb_source with
    --wandb) or `python -m multirun_analysis.wandb_sweep` (make leet, make sync): what only the tests
    use, such as hand-written job folders, lives under tests/."""
    shipped = {f"multirun_analysis.{path.stem}" for path in (ROOT / "multirun_analysis").glob("*.py")}
    code = (
        "import sys, multirun_analysis.__main__, multirun_analysis.wandb_source, multirun_analysis.wandb_sweep\n"
        "print(' '.join(m for m in sys.modules if m.startswith('multirun_analysis.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert shipped - {"multirun_analysis.__init__"} == set(out.stdout.split())


def test_hydra_plugin_discovery_imports_neither_torch_nor_the_app():
    """Hydra's own plugin scan, which imports every module under hydra_plugins/ whose name does not
    start with "_" (the stack worker's does: it brings torch and the app)."""
    modules = imported_after(
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.launcher import Launcher\n"
        "launchers = [plugin.__name__ for plugin in Plugins.instance().discover(Launcher)]\n"
        "assert {'BatchedLauncher', 'BatchedSlurmLauncher'} <= set(launchers), launchers"
    )
    assert not modules & {"torch", "wandb", "nesterov_landscape"}


def test_help_prints_the_config_without_importing_torch():
    """The real entry point as `python -m nesterov_landscape --help` runs it (runpy): Hydra prints the
    config groups and the composed config, and torch is never imported (seconds a call otherwise)."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['nesterov_landscape', '--help']\n"
        "try:\n"
        "    runpy.run_module('nesterov_landscape', run_name='__main__', alter_sys=True)\n"
        "finally:\n"
        "    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "== Config ==" in out.stdout and "optimizer: adam, agnes" in out.stdout and "width: 35" in out.stdout
    assert "torch imported: False" in out.stderr, out.stderr
