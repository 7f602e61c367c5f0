"""The layers keep their boundaries: the numerics know nothing of Hydra or W&B, the analysis never
needs torch, and the Hydra plugins import neither torch nor the app when Hydra discovers them.
Each check imports in a fresh interpreter and reads sys.modules."""

import subprocess
import sys

import pytest

from .helpers import ROOT

NUMERICS = [
    "nesterov_landscape.mlp",
    "nesterov_landscape.data",
    "nesterov_landscape.optimizers",
    "nesterov_landscape.training",
    "nesterov_landscape.probes",
    "nesterov_landscape.constraints",
]


def imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", NUMERICS)
def test_the_numerics_import_neither_hydra_nor_wandb(module):
    assert not imported_after(f"import {module}") & {"hydra", "omegaconf", "wandb"}


def test_the_analysis_never_imports_torch():
    assert "torch" not in imported_after("import multirun_analysis.__main__")


def test_hydra_plugin_discovery_imports_neither_torch_nor_the_app():
    modules = imported_after(
        "import hydra_plugins.nesterov_landscape_batched.batched_launcher, "
        "hydra_plugins.nesterov_landscape_batched.batched_sweeper"
    )
    assert not modules & {"torch", "wandb", "nesterov_landscape"}
