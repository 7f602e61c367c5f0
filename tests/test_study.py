"""The study's analysis on hand-built sweeps: Wilson intervals, shares of seeds, numeric order in every
table and legend, the mu panels, the phase diagram, the answer in words, the expected jobs of a preset."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from multirun_analysis.__main__ import main
from multirun_analysis.figures import MU_VIEW_T, final_loss_vs_key, landscape_panels, loss_curves
from multirun_analysis.load import load_sweeps
from multirun_analysis.phase import phase_diagram
from multirun_analysis.report import write_report
from multirun_analysis.shares import outcomes_of, share_table
from multirun_analysis.stats import Z_95, wilson_interval
from multirun_analysis.tables import add_derived_columns, group_keys

from .synthetic import completed_summary, decaying_history, job_config, write_job, write_multirun_yaml


def config(width: int, seed: int, depth: int = 2, momentum: float = 0.99, precision: str = "float32") -> dict:
    cfg = job_config(width, seed, momentum)
    cfg["model"]["depth"] = depth
    cfg["trainer"]["precision"] = precision
    return cfg


def score_test_interval(k: int, n: int) -> tuple[float, float]:
    """The Wilson interval by its definition, independent of the formula under test: the p whose
    score test accepts k of n, the roots of (k/n - p)^2 = z^2 p (1 - p) / n."""
    p_hat, z2 = k / n, Z_95**2
    roots = np.roots([1 + z2 / n, -(2 * p_hat + z2 / n), p_hat**2])
    return float(min(roots.real)), float(max(roots.real))


@pytest.mark.parametrize(
    "k,n,low,high",
    [
        # Newcombe, Statistics in Medicine 17 (1998) 857-872, Table I, method 3 (score, no continuity correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_1998(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_edges_and_definition():
    z2 = Z_95**2
    # By hand from the definition: 0 of n gives [0, z^2 / (n + z^2)], n of n gives [n / (n + z^2), 1],
    # and k = n/2 is symmetric about 1/2.
    assert wilson_interval(0, 3) == pytest.approx((0.0, z2 / (3 + z2)), abs=1e-12)
    assert wilson_interval(3, 3) == pytest.approx((3 / (3 + z2), 1.0), abs=1e-12)
    low, high = wilson_interval(10, 20)
    assert low + high == pytest.approx(1.0, abs=1e-12)
    for k, n in [(1, 4), (2, 4), (7, 20), (19, 20)]:
        assert wilson_interval(k, n) == pytest.approx(score_test_interval(k, n), abs=1e-9)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes must be in"):
        wilson_interval(5, 4)


def test_shares_count_the_right_runs(tmp_path):
    """Width 8: final losses 1e-10 (in the published range), 1e-13 (below it), 1e-5 (not reached), exactly
    1e-9 (both, the bounds are inclusive), one diverged (counts as not reached, has no landscape), one
    failed and one killed (no result: left out)."""
    sweep = tmp_path / "s"
    cases = [
        completed_summary(1e-10, 2.0, 1.0),
        completed_summary(1e-13, -0.5, 0.5),
        completed_summary(1e-5, 0.1, -3.0),
        completed_summary(1e-9, 1.0, 1.0),
        {"status": "diverged", "final_loss": None, "epochs_run": 10},
        {"status": "failed", "error": "OSError: disk full"},
        None,
    ]
    for seed, summary in enumerate(cases):
        diverged = summary is not None and summary["status"] == "diverged"
        history = decaying_history(1 / 100, diverge_after=0 if diverged else None)
        write_job(sweep / str(seed), config(8, seed), [f"seed={seed}"], summary, history)
    loaded = load_sweeps([sweep])
    add_derived_columns(loaded)
    (row,) = share_table(loaded.runs, ["model.width"], outcomes_of(loaded.runs)).to_dict("records")
    expected = {"loss_le_1e-9": (3, 5), "loss_in_published": (2, 5), "phi_dd_pos_0p1": (3, 4), "mu_pos_0p1": (3, 4)}
    for name, (k, n) in expected.items():
        assert (row[f"{name}_k"], row[f"{name}_n"], row[name]) == (k, n, k / n), name
        assert (row[f"{name}_lo"], row[f"{name}_hi"]) == pytest.approx(score_test_interval(k, n), abs=1e-9), name
    assert row["runs"] == 7


@pytest.fixture
def depths_out_of_order(tmp_path):
    """Depth 10, 5, 2 (in that job order) x momentum 0.99, 0.9 x seeds 1, 0: text order would put 10 first."""
    sweep = tmp_path / "s"
    num = 0
    for depth in (10, 5, 2):
        for momentum in (0.99, 0.9):
            for seed in (1, 0):
                write_job(
                    sweep / str(num),
                    config(8, seed, depth, momentum),
                    [f"model.depth={depth}", f"optimizer.momentum={momentum}", f"seed={seed}"],
                    completed_summary(10.0 ** -(depth + seed), 1.0, 1.0),
                    decaying_history(1 / 100),
                    1.0 + seed,
                )
                num += 1
    loaded = load_sweeps([sweep])
    add_derived_columns(loaded)
    return loaded, tmp_path


def test_numeric_keys_sort_numerically_in_tables_legends_and_panels(depths_out_of_order):
    loaded, tmp_path = depths_out_of_order
    keys = group_keys(loaded)
    assert keys == ["model.depth", "optimizer.momentum"]
    runs = loaded.runs
    legend = [t.get_text() for t in loss_curves(loaded, runs, keys).axes[0].get_legend().get_texts()]
    assert [label.split(",")[0] for label in legend[::2]] == ["2", "5", "10"]  # the title names model.depth
    landscape = landscape_panels(loaded, runs, keys)
    titles = [ax.get_title() for ax in landscape.axes if ax.get_title()]
    assert titles[:3] == [
        "model.depth=2, optimizer.momentum=0.9 (2 seeds)",
        "model.depth=2, optimizer.momentum=0.99 (2 seeds)",
        "model.depth=5, optimizer.momentum=0.9 (2 seeds)",
    ]
    seeds = [t.get_text() for t in landscape.axes[0].get_legend().get_texts()]
    assert seeds == ["seed 0", "seed 1"]
    by_momentum = final_loss_vs_key(runs, keys).axes[0]
    assert [t.get_text() for t in by_momentum.get_xticklabels()] == ["0.9", "0.99"]
    hue = [t.get_text() for t in by_momentum.get_legend().get_texts()]
    assert hue == ["2", "5", "10"]
    phase = phase_diagram(share_table(runs, keys, outcomes_of(runs)), keys, outcomes_of(runs)).axes[0]
    assert [t.get_text() for t in phase.get_yticklabels()] == ["2", "5", "10"]
    write_report(loaded, tmp_path / "out")
    for table in ("summary.csv", "shares.csv", "metrics.csv"):
        frame = pd.read_csv(tmp_path / "out" / table)
        assert list(frame["model.depth"]) == [2, 2, 5, 5, 10, 10], table
        assert list(frame["optimizer.momentum"]) == [0.9, 0.99] * 3, table


def test_mu_panel_is_fitted_to_t_beyond_the_spike(tmp_path):
    """A run at loss 1e-2 with phi'' = 1: mu(t) = 1 - 2e-2 / t^2 is -199 at t = 0.01 but only -1 at
    t = 0.1 and 0.98 at t = 1; the panel shows [-1, 0.98] with a margin, not the spike."""
    sweep = tmp_path / "s"
    for seed in (0, 1):
        write_job(
            sweep / str(seed),
            config(8, seed),
            [f"seed={seed}"],
            completed_summary(1e-2, 1.0, -199.0),
            decaying_history(1 / 100),
            landscape_curvature=1.0,
            final_loss_for_mu=1e-2,
            landscape_points=100,
        )
    loaded = load_sweeps([sweep])
    add_derived_columns(loaded)
    mu_axis = landscape_panels(loaded, loaded.runs, []).axes[1]
    low, high = mu_axis.get_ylim()
    assert -1.2 < low < -1.0 and 0.98 < high < 1.2
    assert loaded.landscapes["r00000"]["mu"].min() == pytest.approx(-199.0)
    (shade,) = mu_axis.patches
    assert shade.get_x() == -MU_VIEW_T and shade.get_width() == pytest.approx(2 * MU_VIEW_T)


@pytest.fixture
def study(tmp_path):
    """Width 8, 16 x depth 2, 4 x float32, float64 x seeds 0, 1. Width 16 reaches 1e-10, width 8 stalls at
    1e-5; phi'' > 0 on |t| <= 0.1 only at depth 2; mu > 0 everywhere. phi''(0) is 10 in float32 and
    1e-3 in float64, as the paper preset's end of training (docs/precision.md)."""
    sweep = tmp_path / "s"
    num = 0
    for width in (8, 16):
        for depth in (2, 4):
            for precision in ("float32", "float64"):
                for seed in (0, 1):
                    summary = completed_summary(1e-10 if width == 16 else 1e-5, 1.0 if depth == 2 else -1.0, 0.5)
                    summary["phi_dd_at_0"] = 10.0 if precision == "float32" else 1e-3
                    overrides = [f"model.width={width}", f"model.depth={depth}", f"trainer.precision={precision}"]
                    cfg = config(width, seed, depth, 0.99, precision)
                    write_job(sweep / str(num), cfg, [*overrides, f"seed={seed}"], summary, decaying_history(1 / 100))
                    num += 1
    loaded = load_sweeps([sweep])
    add_derived_columns(loaded)
    return loaded, tmp_path


def test_phase_diagram_cells_are_the_group_shares(study):
    loaded, _ = study
    keys = group_keys(loaded)
    outcomes = outcomes_of(loaded.runs)
    figure = phase_diagram(share_table(loaded.runs, keys, outcomes), keys, outcomes)
    panels = [ax for ax in figure.axes if ax.collections and ax.get_xlabel()]
    assert len(outcomes) == 4 and len(panels) == 2 * len(outcomes)  # rows float32, float64; a column per outcome
    reach, published, curvature, aiming = panels[:4]  # float32
    assert [t.get_text() for t in reach.get_yticklabels()] == ["2", "4"]  # rows: depth
    assert [t.get_text() for t in reach.get_xticklabels()] == ["8", "16"]  # columns: width
    assert reach.get_ylabel() == "trainer.precision=float32\nmodel.depth"
    assert np.asarray(reach.collections[0].get_array()).reshape(2, 2).tolist() == [[0, 1], [0, 1]]
    assert np.asarray(published.collections[0].get_array()).reshape(2, 2).tolist() == [[0, 1], [0, 1]]
    assert np.asarray(curvature.collections[0].get_array()).reshape(2, 2).tolist() == [[1, 1], [0, 0]]
    assert np.asarray(aiming.collections[0].get_array()).reshape(2, 2).tolist() == [[1, 1], [1, 1]]
    assert [t.get_text() for t in reach.texts] == ["0/2", "2/2", "0/2", "2/2"]


def test_report_opens_with_the_answer(study):
    loaded, tmp_path = study
    write_report(loaded, tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# Sweep report\n\n## The answer\n\n16 runs in 8 groups")
    answer = report[: report.index("Sources:")]
    assert "- **final loss <= 1e-9**: 8 of 16 runs (50%, 95% CI 28% to 72%)" in answer
    assert "By model.width: 8: 0/8, 16: 8/8." in answer
    assert "- **phi'' > 0 on |t| <= 0.1**: 8 of 16 runs" in answer and "By model.depth: 2: 8/8, 4: 0/8." in answer
    assert "By model.depth: 2: 8/8, 4: 0/8." in answer and "Among the runs reaching 1e-9: 4/8." in answer
    assert "every seed in 8 of 8 groups" in answer  # mu > 0 everywhere
    assert "Median phi''(0) of the runs reaching 1e-9: 10 vs 0.001." in answer
    pairs = "In the 4 pairs of runs that differ only in precision and both reach 1e-9, |phi''(0)| in float32 is "
    assert pairs + "1e+04 times that in float64" in answer
    assert "the sign of phi'' on |t| <= 0.1 agrees in 4 and that of mu in 4 of them." in answer
    assert "shares.csv" in report and "phase_diagram.png" in report


def test_expected_jobs_include_the_presets_sweeper_params(tmp_path):
    """A preset's axes live in hydra.sweeper.params, not on the command line: a sweep of width 8, 16 from
    the preset with seed=0 on the command line, of which only width 8 started, misses width 16."""
    sweep = tmp_path / "s"
    sweep.mkdir()
    hydra = {
        "sweeper": {"params": {"model.width": "8,16", "seed": "range(0,5)"}},
        "overrides": {"task": ["experiment=gupta2025_phase", "seed=0"]},
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    write_job(
        sweep / "0",
        config(8, 0),
        ["model.width=8", "seed=0", "experiment=gupta2025_phase"],
        completed_summary(1e-10, 1.0, 1.0),
        decaying_history(1 / 100),
    )
    loaded = load_sweeps([sweep])
    add_derived_columns(loaded)
    missing = loaded.runs[loaded.runs["status"] == "missing"]
    assert list(missing["model.width"]) == [16] and not loaded.runs["duplicate"].any()


def test_bad_arguments_are_one_line(study, capsys):
    loaded, tmp_path = study
    sweep = tmp_path / "s"
    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep), "--wandb-mode", "sometimes"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--wandb-mode" in error and "'offline', 'online', 'disabled'" in error
    assert main([str(sweep), "--phase-axes", "model.width,model.widht", "--wandb-mode", "disabled"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "model.widht" in error and "model.depth, model.width, trainer.precision" in error


def test_multirun_yaml_without_sweeper_params_still_lists_jobs(tmp_path):
    sweep = tmp_path / "s"
    write_multirun_yaml(sweep, ["model.width=8,16", "seed=0"])
    write_job(
        sweep / "0",
        config(8, 0),
        ["model.width=8", "seed=0"],
        completed_summary(1e-10, 1.0, 1.0),
        decaying_history(1 / 100),
    )
    loaded = load_sweeps([sweep])
    assert list(loaded.runs.loc[loaded.runs["status"] == "missing", "model.width"]) == [16]
