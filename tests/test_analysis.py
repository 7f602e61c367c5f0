"""multirun_analysis on a hand-built sweep (exact expected numbers) and on a real small multirun."""

import json
import math
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection

from multirun_analysis.__main__ import main
from multirun_analysis.load import load_sweeps
from multirun_analysis.report import write_report
from multirun_analysis.shares import landscape_radius

from .figure_capture import captured_figures
from .helpers import ROOT, TINY, run_analysis, run_cli
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
            decaying_history(1 / 100),
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
    assert list(summary.columns[:6]) == ["runs", "completed", "diverged", "failed", "interrupted", "missing"]
    assert list(summary.loc["adam", ["runs", "completed", "missing"]]) == [2, 1, 1]
    assert list(summary.loc["nag", ["runs", "completed", "missing"]]) == [2, 2, 0]
    assert "duplicate" not in (tmp_path / "out" / "problems.txt").read_text()


def png_size(path):
    """(width, height) in pixels from the PNG header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def two_key_sweep(tmp_path):
    """model.width 8, 16 x optimizer.momentum 0.9, 0.99 x seeds 0, 1, 2, all completed: final loss
    10^-(8 + s^2 + [width 16] + 2 [momentum 0.99]) (the median is seed 1's, the mean of the logs is not),
    loss history 10^(-epoch / (100 + 50 s^2)) (median seed 1, min seed 0, max seed 2), landscape
    curvature c = 1 + s + 10 [width 16] + 100 [momentum 0.99]."""
    sweep = tmp_path / "s"
    write_multirun_yaml(sweep, ["model.width=8,16", "optimizer.momentum=0.9,0.99", "seed=0,1,2"])
    jobs, num = {}, 0
    for width in (8, 16):
        for momentum in (0.9, 0.99):
            for seed in (0, 1, 2):
                loss = 10.0 ** -(8 + seed**2 + (width == 16) + 2 * (momentum == 0.99))
                curvature = 1 + seed + 10 * (width == 16) + 100 * (momentum == 0.99)
                jobs[width, momentum, seed] = write_job(
                    sweep / str(num),
                    job_config(width, seed, momentum),
                    [f"model.width={width}", f"optimizer.momentum={momentum}", f"seed={seed}"],
                    completed_summary(loss, curvature, curvature / 2),
                    decaying_history(1 / (100 + 50 * seed**2)),
                    curvature,
                )
                num += 1
    return sweep, jobs


def test_figures_show_the_sweeps_data(tmp_path):
    """The figures' content, read from the matplotlib objects that were saved: titles, axis labels and
    scales, one line or panel per group, and the plotted numbers against the job files."""
    sweep, jobs = two_key_sweep(tmp_path)
    out = tmp_path / "out"
    with captured_figures() as figures:
        write_report(load_sweeps([sweep]), out)
    by_title = {fig.axes[0].get_title(): fig for fig in figures}
    label = "model.width={}, optimizer.momentum={}".format
    groups = [(8, 0.9), (8, 0.99), (16, 0.9), (16, 0.99)]

    # loss curves: one line per group, the median over seeds, a band from min to max
    (ax,) = by_title["Training loss"].axes
    assert (ax.get_xlabel(), ax.get_yscale()) == ("epoch (one pass over the data)", "log")
    assert "median over seeds" in ax.get_ylabel()
    assert sorted(line.get_label() for line in ax.lines) == sorted(label(w, m) for w, m in groups)
    legend = ax.get_legend()  # the keys once, in the title, and each line's values
    assert legend.get_title().get_text() == "model.width\noptimizer.momentum"
    assert [t.get_text() for t in legend.get_texts()] == [f"{w}, {m}" for w, m in groups]
    epochs = np.arange(0, 1001, 10)
    rate = [1 / (100 + 50 * s**2) for s in (0, 1, 2)]
    for line in ax.lines:
        np.testing.assert_array_equal(line.get_xdata(), epochs)
        np.testing.assert_allclose(line.get_ydata(), 10.0 ** (-epochs * rate[1]), rtol=1e-12)
    bands = [c for c in ax.collections if len(c.get_paths())]
    assert len(bands) == 4
    for band in bands:
        vertices = np.concatenate([p.vertices for p in band.get_paths()])
        for epoch in (0, 300, 1000):
            ys = vertices[vertices[:, 0] == epoch, 1]
            assert ys.min() == pytest.approx(10.0 ** (-epoch * rate[0]), rel=1e-12)
            assert ys.max() == pytest.approx(10.0 ** (-epoch * rate[2]), rel=1e-12)

    # Figure 3's panels: phi''(t) above mu(t), one column per group, one line per seed from landscape.csv
    panels = next(fig for fig in figures if fig._suptitle is not None)
    assert "Loss along the gradient" in panels._suptitle.get_text()
    assert png_size(out / "landscape.png") == (18 * 150, int(6.5 * 150))  # 4 columns, 1 pair of rows
    top, bottom = panels.axes[:4], panels.axes[4:]
    assert [ax.get_title() for ax in top] == [f"{label(w, m)} (3 seeds)" for w, m in groups]
    for (width, momentum), upper, lower in zip(groups, top, bottom):
        assert r"\varphi''(t)" in upper.get_ylabel() and r"\mu(t)" in lower.get_ylabel()
        assert [t.get_text() for t in upper.get_legend().get_texts()] == ["seed 0", "seed 1", "seed 2"]
        for ax, column in ((upper, "phi_dd"), (lower, "mu")):
            (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
            segments = lines.get_segments()
            assert len(segments) == 3
            for seed, segment in enumerate(segments):
                landscape = pd.read_csv(jobs[width, momentum, seed] / "landscape.csv")
                # matplotlib hands back a line's points without its NaNs (mu at t = 0: a gap in the line)
                np.testing.assert_array_equal(segment, landscape[["t", column]].dropna().to_numpy())
                assert len(segment) == (21 if column == "phi_dd" else 20)

    # final loss against the momentum, one series per width: medians with min-max bars
    (ax,) = by_title["Final loss against optimizer.momentum"].axes
    assert (ax.get_xlabel(), ax.get_yscale()) == ("optimizer.momentum", "log")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.9", "0.99"]
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "model.width"
    assert [t.get_text() for t in legend.get_texts()] == ["8", "16"]
    points = [line for line in ax.lines if line.get_marker() == "o" and len(line.get_xdata())]
    bars = [line for line in ax.lines if line.get_marker() in (None, "None", "") and len(line.get_xdata()) == 2]
    final = {key: 10.0 ** -(8 + key[2] ** 2 + (key[0] == 16) + 2 * (key[1] == 0.99)) for key in jobs}
    for width, series in zip((8, 16), points):
        medians = [final[width, m, 1] for m in (0.9, 0.99)]
        np.testing.assert_allclose(series.get_ydata(), medians, rtol=1e-12)
    spans = sorted(tuple(sorted(line.get_ydata())) for line in bars)
    expected_spans = sorted((final[w, m, 2], final[w, m, 0]) for w, m in groups)  # seed 2 lowest, seed 0 highest
    np.testing.assert_allclose(np.array(spans), np.array(expected_spans), rtol=1e-12)

    # the heatmap of the two keys: the median log10 final loss in each cell
    heat = by_title["Final training loss"]
    ax = heat.axes[0]
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("model.width", "optimizer.momentum")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["8", "16"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.9", "0.99"]
    assert [t.get_text() for t in ax.texts] == ["-9.0", "-11.0", "-10.0", "-12.0"]
    (mesh,) = [c for c in ax.collections if type(c).__name__ == "QuadMesh"]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(2, 2), [[-9, -11], [-10, -12]], rtol=1e-12)
    assert heat.axes[1].get_ylabel() == "log10 final loss (median over seeds)"
    assert png_size(out / "heatmap_model_width_optimizer_momentum.png")[0] > 0


def test_the_published_range_includes_both_bounds(tmp_path):
    """Final losses of exactly 1e-12 and 1e-9 are in the published range [1e-12, 1e-9]; the floats next
    to them outside it are not."""
    sweep = tmp_path / "s"
    losses = [1e-12, 1e-9, math.nextafter(1e-12, 0), math.nextafter(1e-9, 1)]
    write_multirun_yaml(sweep, [f"seed=range(0,{len(losses)})"])
    for seed, loss in enumerate(losses):
        summary = completed_summary(loss, 1.0, 1.0)
        write_job(sweep / str(seed), job_config(8, seed), [f"seed={seed}"], summary, decaying_history(1 / 100))
    result = run_analysis(str(sweep), "--wandb-mode", "disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (shares,) = pd.read_csv(sweep / "analysis" / "shares.csv").to_dict("records")
    assert (shares["loss_in_published_k"], shares["loss_in_published_n"]) == (2, 4)
    assert (shares["loss_le_1e-9_k"], shares["loss_le_1e-9_n"]) == (3, 4)


def test_the_landscape_radius_is_the_one_most_runs_list():
    """Read from the configs (flattened lists, as load.flatten leaves them): the radius most runs
    list, the smallest on a tie; a run without a gradient line lists none."""
    radii = "probe.gradient_line.radii"
    runs = pd.DataFrame({radii: ["[0.1, 0.5]", "[0.5, 1.0]", None, "[0.5]"]})
    assert landscape_radius(runs) == 0.5
    assert landscape_radius(pd.DataFrame({radii: ["[1.0, 0.1]", "[0.1, 1.0]"]})) == 0.1
    assert landscape_radius(pd.DataFrame({"seed": [0]})) is None


@pytest.mark.slow
def test_the_shares_follow_the_radii_the_jobs_probed(tmp_path):
    """probe.gradient_line.radii without 0.1: the landscape shares are over |t| <= 0.5, the smallest
    radius the jobs probed, counted from their summaries; nothing is looked up at 0.1."""
    sweep = tmp_path / "sweep"
    args = [*TINY, "trainer.precision=float64", "probe.gradient_line.radii=[0.5,1.0]", "seed=0,1,2"]
    result = run_cli(*args, f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads((sweep / str(n) / "summary.json").read_text()) for n in range(3)]
    assert all("phi_dd_min_0p5" in s and "phi_dd_min_0p1" not in s for s in summaries)
    result = run_analysis(str(sweep), "--wandb-mode", "disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = sweep / "analysis"
    (shares,) = pd.read_csv(out / "shares.csv").to_dict("records")
    for outcome, metric in (("phi_dd_pos_0p5", "phi_dd_min_0p5"), ("mu_pos_0p5", "mu_min_0p5")):
        values = [s[metric] for s in summaries if s[metric] is not None]
        assert (shares[f"{outcome}_k"], shares[f"{outcome}_n"]) == (sum(v > 0 for v in values), len(values))
    assert not [c for c in shares if "0p1" in c]
    (summary,) = pd.read_csv(out / "summary.csv").to_dict("records")
    positive = [s["phi_dd_min_0p5"] > 0 for s in summaries]
    assert summary["frac_phi_dd_pos_0p5"] == pytest.approx(sum(positive) / 3)
    assert summary["mu_min_1_median"] == pytest.approx(float(np.median([s["mu_min_1"] for s in summaries])))
    assert "phi'' > 0 on |t| <= 0.5" in (out / "report.md").read_text().replace("\\|", "|")  # markdown escapes |
