"""multirun_analysis on a hand-built sweep (exact expected numbers) and on a real small multirun."""

import math
import subprocess
import sys

import pandas as pd
import pytest

from multirun_analysis.__main__ import main
from multirun_analysis.load import load_sweeps
from multirun_analysis.report import write_report

from .helpers import ROOT, TINY, run_cli
from .synthetic import completed_summary, decaying_history, job_config, write_job, write_multirun_yaml


# every table and figure of a sweep whose model.width varies
OUTPUTS = [
    *("runs.csv", "summary.csv", "summary.md", "summary.tex", "metrics.csv", "shares.csv", "shares.md", "report.md"),
    *(
        f"{figure}.{ext}"
        for figure in ("loss_curves", "landscape", "final_loss_vs_model_width")
        for ext in ("png", "pdf")
    ),
]


@pytest.fixture
def synthetic(tmp_path):
    """Sweep A asks for width 8, 16 x seeds 0-3 (8 jobs). Width 8: seeds 0, 1 completed, seed 2 diverged,
    seed 3 killed (folder without summary). Width 16: seed 0 completed, seed 1 failed, seed 2 with a
    truncated summary.json and history.csv, seed 3 never started. Sweep B repeats width 8, seed 0."""
    a, b = tmp_path / "a", tmp_path / "b"
    write_multirun_yaml(a, ["model.width=8,16", "seed=0,1,2,3"])
    jobs = [(8, 0), (8, 1), (8, 2), (8, 3), (16, 0), (16, 1), (16, 2)]
    dirs = {}
    for num, (width, seed) in enumerate(jobs):
        dirs[width, seed] = a / str(num)
    cfg = lambda w, s: (job_config(w, s), [f"model.width={w}", f"seed={s}"])  # noqa: E731
    write_job(dirs[8, 0], *cfg(8, 0), completed_summary(1e-10, 2.0, 1.0), decaying_history(1 / 100), 2.0)
    write_job(dirs[8, 1], *cfg(8, 1), completed_summary(1e-11, -0.5, 0.5), decaying_history(1 / 50), -0.5)
    write_job(
        dirs[8, 2],
        *cfg(8, 2),
        {"status": "diverged", "final_loss": None, "epochs_run": 410},
        decaying_history(1 / 100, diverge_after=400),
    )
    write_job(dirs[8, 3], *cfg(8, 3))
    write_job(dirs[16, 0], *cfg(16, 0), completed_summary(1e-9, 3.0, 2.0), decaying_history(1 / 100), 3.0)
    write_job(dirs[16, 1], *cfg(16, 1), {"status": "failed", "error": "OSError: disk full"})
    write_job(dirs[16, 2], *cfg(16, 2))
    (dirs[16, 2] / "summary.json").write_text('{"status": "completed", "final_lo')
    (dirs[16, 2] / "history.csv").write_text("epo")
    write_multirun_yaml(b, ["model.width=8", "seed=0"])
    write_job(b / "0", *cfg(8, 0), completed_summary(5e-10, 2.0, 1.0), decaying_history(1 / 100), 2.0)
    return tmp_path, [a, b], dirs


def test_counts_and_aggregates_match_hand_computed_values(synthetic):
    tmp_path, sweeps, dirs = synthetic
    sweep = load_sweeps(sweeps)
    write_report(sweep, tmp_path / "out")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("model.width")
    assert list(summary.index) == [8, 16]
    w8, w16 = summary.loc[8], summary.loc[16]
    assert (w8["runs"], w8["completed"], w8["diverged"], w8["failed"], w8["missing"]) == (4, 2, 1, 0, 1)
    assert (w16["runs"], w16["completed"], w16["diverged"], w16["failed"], w16["missing"]) == (4, 1, 0, 1, 2)
    assert w8["final_loss_geomean"] == pytest.approx(math.sqrt(1e-10 * 1e-11), rel=1e-12)
    assert w8["final_loss_median"] == pytest.approx((1e-10 + 1e-11) / 2, rel=1e-12)
    assert (w8["final_loss_min"], w8["final_loss_max"]) == (1e-11, 1e-10)
    assert w16["final_loss_geomean"] == pytest.approx(1e-9, rel=1e-12)
    # Width 8: seed 0 reaches 1e-3/1e-6/1e-9 at epochs 300/600/900, seed 1 at 150/300/450, the
    # diverged seed 2 at 300/never/never: medians 300, 600, 900.
    assert (w8["epochs_to_1e-3_median"], w8["epochs_to_1e-6_median"], w8["epochs_to_1e-9_median"]) == (300, 600, 900)
    assert (w16["epochs_to_1e-3_median"], w16["epochs_to_1e-9_median"]) == (300, 900)
    assert w8["frac_phi_dd_pos_0p1"] == 0.5 and w8["frac_mu_pos_0p1"] == 1.0
    assert w8["phi_dd_at_0_median"] == pytest.approx((3.0 + 0.5) / 2)
    assert w16["frac_phi_dd_pos_0p1"] == 1.0 and w16["mu_min_0p1_median"] == 2.0
    problems = (tmp_path / "out" / "problems.txt").read_text()
    assert str(dirs[16, 2] / "summary.json") in problems and str(dirs[16, 2] / "history.csv") in problems
    assert f"duplicate job {sweeps[1] / '0'}" in problems
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 9 and runs["duplicate"].sum() == 1
    assert "not started" in runs.loc[runs["status"] == "missing", "job_dir"].str.cat()


def test_every_output_is_written(synthetic):
    tmp_path, sweeps, _ = synthetic
    write_report(load_sweeps(sweeps), tmp_path / "out")
    for name in OUTPUTS:
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    report = (tmp_path / "out" / "report.md").read_text()
    assert "summary.tex" in report and "landscape.png" in report and "OSError: disk full" in report
    assert r"\begin{tabular}" in (tmp_path / "out" / "summary.tex").read_text()


def test_new_metrics_and_keys_need_no_code(tmp_path):
    sweep = tmp_path / "s"
    for num, momentum in enumerate([0.9, 0.99]):
        write_job(
            sweep / str(num),
            job_config(8, 0, momentum),
            [f"optimizer.momentum={momentum}"],
            completed_summary(1e-10, 1.0, 1.0) | {"brand_new_metric": 7.0 + num},
        )
    write_report(load_sweeps([sweep]), tmp_path / "out")
    medians = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert list(medians["optimizer.momentum"]) == [0.9, 0.99] and list(medians["brand_new_metric"]) == [7.0, 8.0]


def test_by_option_and_bad_input(synthetic, capsys):
    tmp_path, sweeps, _ = synthetic
    assert main([str(sweeps[0]), "--by", "seed", "--out", str(tmp_path / "by_seed"), "--wandb-mode", "disabled"]) == 0
    assert list(pd.read_csv(tmp_path / "by_seed" / "summary.csv")["seed"]) == [0, 1, 2, 3]
    assert main([str(sweeps[0]), "--by", "model.widht", "--out", str(tmp_path / "x")]) == 2
    assert "model.widht" in capsys.readouterr().err
    assert main([str(tmp_path / "nope")]) == 2
    assert main(["--root", str(tmp_path / "empty")]) == 2


def test_wandb_source_without_network_fails_clearly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "multirun_analysis", "--wandb", "someone/project", "--group", "g"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot read W&B runs of someone/project") and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_make_analysis_on_a_real_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(*TINY, "model.width=4,8", "seed=0,1", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    made = subprocess.run(
        ["make", "-s", "analysis", f"SWEEP={sweep}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, made.stderr
    assert "model.width" in made.stdout
    out = sweep / "analysis"
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["model.width"]) == [4, 8] and list(summary["completed"]) == [2, 2]


def test_a_running_sweep_over_config_groups(tmp_path):
    """optimizer=nag,adam x seed=0,1 with adam seed 1 not started yet: it counts as missing under adam,
    not as a duplicate of a nag job."""
    sweep = tmp_path / "s"
    write_multirun_yaml(sweep, ["optimizer=nag,adam", "seed=0,1"])
    for num, (name, seed) in enumerate([("nag", 0), ("nag", 1), ("adam", 0)]):
        config = job_config(8, seed)
        config["optimizer"] = (
            {"name": "nag", "lr": 0.005, "momentum": 0.99}
            if name == "nag"
            else {"name": "adam", "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
        )
        write_job(
            sweep / str(num),
            config,
            [f"optimizer={name}", f"seed={seed}"],
            completed_summary(1e-10, 1.0, 1.0),
            decaying_history(1 / 100),
        )
    write_report(load_sweeps([sweep]), tmp_path / "out")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("optimizer.name")
    assert list(summary.columns[:5]) == ["runs", "completed", "diverged", "failed", "missing"]
    assert list(summary.loc["adam", ["runs", "completed", "missing"]]) == [2, 1, 1]
    assert list(summary.loc["nag", ["runs", "completed", "missing"]]) == [2, 2, 0]
    assert "duplicate" not in (tmp_path / "out" / "problems.txt").read_text()
