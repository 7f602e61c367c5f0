"""experiment=gupta2025_phase: the preset declares the study's grid, runs end to end at a reduced size
with the batched launcher, and its analysis lands on W&B as one run beside the jobs."""

import itertools
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from .helpers import ROOT, TINY, compose_config, run_cli
from .wandb_offline import overview

STUDY_GRID = {
    "model.width": [10, 20, 35, 50],
    "model.depth": [2, 4, 6, 8, 10],
    "optimizer.momentum": [0.9, 0.95, 0.99],
    "trainer.precision": ["float32", "float64"],
    "seed": list(range(20)),
}


def test_preset_declares_the_study_on_the_paper_setup():
    phase = compose_config(["experiment=gupta2025_phase"], hydra=True)
    paper = compose_config(["experiment=gupta2025_fig3"])
    params = dict(phase.hydra.sweeper.params)
    assert list(params) == list(STUDY_GRID)
    assert params["seed"] == "range(0,20)"
    for key, values in STUDY_GRID.items():
        if key != "seed":
            assert params[key] == ",".join(map(str, values)), key
    assert len(list(itertools.product(*STUDY_GRID.values()))) == 2400
    # Off the swept axes, a job of the study is a job of the paper preset.
    phase_job = OmegaConf.to_container(OmegaConf.masked_copy(phase, [k for k in phase if k != "hydra"]), resolve=True)
    paper_job = OmegaConf.to_container(paper, resolve=True)
    assert phase_job["logger"].pop("tags") == ["gupta2025_phase"]
    assert paper_job["logger"].pop("tags") == ["gupta2025_fig3"]
    assert phase_job == paper_job


def wandb_records(run_dir):
    wandb_cli = shutil.which("wandb", path=str(ROOT / ".venv" / "bin")) or shutil.which("wandb")
    out = subprocess.run(
        [wandb_cli, "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True, check=True
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.slow
def test_preset_runs_end_to_end_and_its_analysis_lands_on_wandb(tmp_path):
    sweep = tmp_path / "sweep"
    small = [o for o in TINY if not o.startswith("model.")]  # the preset's axes come from the command line
    axes = ["model.width=4,8", "model.depth=1,2", "optimizer.momentum=0.9", "seed=0,1"]  # precision: the preset's
    result = run_cli(
        "experiment=gupta2025_phase",
        *small,
        *axes,
        "hydra/launcher=batched",
        f"hydra.sweep.dir={sweep}",
        "--multirun",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == 16 and {s["status"] for s in summaries} == {"completed"}
    assert {s["precision"] for s in summaries} == {"float32", "float64"}
    assert {s["stacked_with"] for s in summaries} == {1}  # width x depth x precision stacks of 2 seeds
    (group,) = {s["wandb"]["group"] for s in summaries}

    # As `make analysis SWEEP=...` runs it, and without importing torch.
    code = (
        "import sys; from multirun_analysis.__main__ import main; rc = main(sys.argv[1:]); "
        "print('torch imported:', 'torch' in sys.modules); sys.exit(rc)"
    )
    analysed = subprocess.run(
        [sys.executable, "-c", code, str(sweep)],
        cwd=tmp_path,
        env={**os.environ, "WANDB_SILENT": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert analysed.returncode == 0, analysed.stderr
    assert "torch imported: False" in analysed.stdout
    out = sweep / "analysis"
    assert (out / "phase_diagram.png").stat().st_size > 0
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 8 and summary["missing"].sum() == 0  # every job of the preset's grid found
    shares = pd.read_csv(out / "shares.csv")
    assert list(shares["runs"]) == [2] * 8 and list(shares["loss_le_1e-9_n"]) == [2] * 8

    (run_dir,) = (out / "wandb").glob("offline-run-*")
    records = wandb_records(run_dir)
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert (run["job_type"], run["run_group"], run["display_name"]) == ("analysis", group, "analysis")
    assert run["notes"].startswith("## The answer")
    (logged,) = [r["history"]["item"] for r in records if r["type"] == "history"]
    # the tables are in the summary: in the history they would add charts of their sizes
    logged_tables = overview(run_dir)["summary"]
    for name in ("shares", "summary", "metrics", "runs"):
        assert logged_tables[f"analysis/{name}"]["_type"] == "table-file", name
    table = json.loads((run_dir / "files" / logged_tables["analysis/shares"]["path"]).read_text())
    assert table["columns"] == list(shares.columns)
    assert pd.DataFrame(table["data"], columns=table["columns"]).equals(shares)
    assert (run_dir / "files" / logged["figures/phase_diagram.path"]).stat().st_size > 0
    assert (run_dir / "files" / "report.md").read_text() == (out / "report.md").read_text()
