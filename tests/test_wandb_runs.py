"""What a job leaves in its offline W&B run, read back from the run itself and compared with the job's
own files: config, history and metric definitions, each probe's table and charts, summary scalars,
name and group; and what re-running a sweep into its folder does to the files and the W&B runs (the
basic launcher)."""

import csv
import json
import math

import pytest

from .helpers import TINY, run_cli
from .wandb_offline import history_rows, offline_runs, overview, records, run_dir, run_record, same_number

pytestmark = pytest.mark.slow


def read_csv(path):
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def public(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


# every probe, the gradient line every 5 epochs and at the end (23) on a grid of 2,001 points
EVERY_PROBE = [
    *TINY,
    "trainer.epochs=23",
    "probe=[gradient_line,random_line,hessian,pl]",
    "probe.gradient_line.every=5",
    "probe.gradient_line.t_step=0.001",
    "probe.gradient_line.mu_cutoff=0.15",
    "probe.gradient_line.exact=true",  # its scalars (mu_exact_min_*) reach the W&B summary too
]


@pytest.fixture(scope="module")
def every_probe(tmp_path_factory):
    """A job with every probe: its folder, summary.json, W&B run folder, `leet inspect --summary` and records."""
    tmp_path = tmp_path_factory.mktemp("every_probe")
    job = tmp_path / "job"
    result = run_cli(*EVERY_PROBE, f"hydra.run.dir={job}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((job / "summary.json").read_text())
    (run,) = offline_runs(job)
    return job, summary, run, overview(run), records(run)


def logged_table(run, info, key: str) -> tuple[dict, dict]:
    """The summary's reference to table `key` and the table W&B wrote."""
    ref = info["summary"][key]
    return ref, json.loads((run / "files" / ref["path"]).read_text())


def charts_of(run_records, prefix: str) -> dict[str, dict]:
    """The line charts registered under `prefix`/ (as run.log registers wandb.plot.line), by their y."""
    charts = {}
    for record in run_records:
        if record.get("type") == "config":
            for key, value in record["config"]["update"].items():
                if key.startswith(f"_wandb.visualize.{prefix}/"):
                    charts[key.removeprefix(f"_wandb.visualize.{prefix}/")] = value["panel_config"]
    return charts


def assert_charts_read(info, run_records, prefix: str, ref: dict, x: str, ys: list[str], stroke: str | None):
    charts = charts_of(run_records, prefix)
    assert sorted(charts) == sorted(ys)
    for y, chart in charts.items():
        assert chart["fieldSettings"] == {"x": x, "y": y, "stroke": stroke}
        assert f"{prefix}/{y}_table" in json.dumps(chart["userQuery"])
        assert info["summary"][f"{prefix}/{y}_table"]["path"] == ref["path"]  # the one table, written once


def test_a_jobs_wandb_run_holds_its_config_name_history_and_metric_definitions(every_probe):
    job, summary, run, info, run_records = every_probe
    assert run.name.endswith(f"-{summary['wandb']['id']}")
    assert info["state"] == "finished" and info["exit_code"] == 0
    # the config: the job's resolved config, as summary.json records it
    assert public(info["config"]) == summary["config"]
    # name: the command-line overrides, sorted as Hydra's override_dirname (hydra.run.dir left out); no group
    assert info["name"] == ",".join(sorted(EVERY_PROBE)) == summary["job"]["override_dirname"]
    assert not run_record(run_records).get("run_group") and summary["wandb"]["group"] is None
    # history: every row of history.csv at W&B step = its epoch, the last at 23 (not a multiple of log_every),
    # the PL ratio a series beside the loss
    history = read_csv(job / "history.csv")
    logged = history_rows(run_records)
    assert [row["_step"] for row in logged] == [row["epoch"] for row in history] == [0, 5, 10, 15, 20, 23]
    for ours, theirs in zip(history, logged):
        expected = (ours["loss"], ours["grad_norm"], ours["pl_ratio"])
        assert (theirs["train/loss"], theirs["train/grad_norm"], theirs["train/pl_ratio"]) == expected
    # what leet and the web chart (every numeric history key): the measurements; no epoch series, no
    # table sizes (<key>.ncols, .nrows, which a table in the history adds)
    charted = {key for record in run_records if record.get("type") == "history" for key in record["history"]["item"]}
    assert {key for key in charted if not key.startswith("_")} == {"train/loss", "train/grad_norm", "train/pl_ratio"}
    # metric definitions: the summary keeps each series' minimum beside its last value
    (metric,) = [r["metric"] for r in run_records if r.get("type") == "metric"]
    assert metric["glob_name"] == "train/*" and metric["summary"] == {"min": True, "last": True}
    for column in ("loss", "grad_norm", "pl_ratio"):
        values = [row[column] for row in history]
        assert info["summary"][f"train/{column}"] == {"min": min(values), "last": values[-1]}, column


def test_the_gradient_line_table_holds_every_checkpoint_thinned_to_wandbs_row_limit(every_probe):
    """6 checkpoints of 2,001 points: 12,006 rows of landscape.csv, more than the 10,000 W&B keeps of a
    table, so the table keeps every other point of each checkpoint's grid; its charts draw a line per
    checkpoint (stroke = epoch)."""
    job, _, run, info, run_records = every_probe
    landscape = read_csv(job / "landscape.csv")
    ref, table = logged_table(run, info, "landscape/table")
    assert table["columns"] == ["epoch", "t", "phi", "phi_dd", "mu"]
    epochs = sorted({row["epoch"] for row in landscape})
    assert epochs == [0, 5, 10, 15, 20, 23] and len(landscape) == 6 * 2001
    kept = [row for epoch in epochs for row in [r for r in landscape if r["epoch"] == epoch][::2]]
    assert (ref["nrows"], len(table["data"])) == (len(kept), 6 * 1001)
    for row, logged_row in zip(kept, table["data"]):
        assert all(same_number(row[c], v) for c, v in zip(table["columns"], logged_row)), (row["epoch"], row["t"])
    assert sum(math.isnan(r[4]) for r in table["data"]) == 6 * 149  # |t| < 0.15: t = -0.148, ..., 0.148
    assert_charts_read(info, run_records, "landscape", ref, "t", ["phi", "phi_dd", "mu"], stroke="epoch")


def test_the_random_lines_table_holds_landscape_random_and_the_gradient_line_for_contrast(every_probe):
    """landscape_random.csv's rows, a line per direction, and the gradient line at the trained weights
    (landscape.csv's last checkpoint) as line "gradient"; 5 x 201 + 2,001 rows, under W&B's limit."""
    job, _, run, info, run_records = every_probe
    ref, table = logged_table(run, info, "random_line/table")
    assert table["columns"] == ["line", "t", "phi", "phi_dd"]
    columns = ["t", "phi", "phi_dd"]
    random = [
        [f"random {int(r['direction'])}", *(r[c] for c in columns)] for r in read_csv(job / "landscape_random.csv")
    ]
    gradient = [["gradient", *(r[c] for c in columns)] for r in read_csv(job / "landscape.csv") if r["epoch"] == 23]
    assert len(random) == 5 * 201 and len(gradient) == 2001
    assert ref["nrows"] == len(table["data"]) == len(random) + len(gradient)
    for row, logged_row in zip(random + gradient, table["data"]):
        assert row == logged_row
    assert_charts_read(info, run_records, "random_line", ref, "t", ["phi", "phi_dd"], stroke="line")


def test_the_hessian_table_holds_its_eigenvalues_and_the_summary_its_trace(every_probe):
    job, summary, run, info, run_records = every_probe
    ref, table = logged_table(run, info, "hessian/table")
    with (job / "hessian.csv").open() as f:
        on_disk = [[int(row["rank"]), float(row["eigenvalue"])] for row in csv.DictReader(f)]
    assert table["columns"] == ["rank", "eigenvalue"] and table["data"] == on_disk and len(on_disk) == 5
    assert_charts_read(info, run_records, "hessian", ref, "rank", ["eigenvalue"], stroke=None)
    title = charts_of(run_records, "hessian")["eigenvalue"]["stringSettings"]["title"]
    trace, error = summary["hessian_trace"], summary["hessian_trace_std_error"]
    assert title == f"top 5 Hessian eigenvalues; trace {trace:.4g} ± {error:.2g}"
    assert (info["summary"]["hessian_trace"], info["summary"]["hessian_trace_std_error"]) == (trace, error)


def test_a_jobs_wandb_summary_holds_the_scalars_of_summary_json(every_probe):
    """Null there, such as mu_min_0p1 inside the cutoff, is absent; nothing else but W&B's own keys,
    the series and the tables."""
    _, summary, _, info, _ = every_probe
    scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    assert {"final_loss", "phi_dd_min_0p1", "mu_min_1", "mu_exact_min_0p5", "status", "final_pl_ratio"} <= set(scalars)
    assert summary["mu_min_0p1"] is None and "mu_min_0p1" not in info["summary"]
    for key, value in scalars.items():
        assert info["summary"][key] == value, key
    tables = ("landscape/", "random_line/", "hessian/")
    assert not {k for k in info["summary"] if k not in scalars and not k.startswith(("_", "train/", *tables))}


def sweep(tmp_path, *args):
    result = run_cli(*TINY, *args, "hydra.sweep.dir=multirun/resume", "--multirun", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = [tmp_path / "multirun" / "resume" / str(n) for n in (0, 1)]
    return jobs, [json.loads((job / "summary.json").read_text()) for job in jobs]


def logged_matches_files(job, summary):
    """The job's W&B run named in summary.json logged exactly its history.csv, with its config."""
    run = run_dir(job, summary["wandb"]["id"])
    history = read_csv(job / "history.csv")
    logged = history_rows(records(run))
    assert [(r["_step"], r["train/loss"]) for r in logged] == [(r["epoch"], r["loss"]) for r in history]
    assert public(overview(run)["config"]) == summary["config"]


def has_run(job, run_id):
    return any(path.name.endswith(f"-{run_id}") for path in offline_runs(job))


def test_resume_skips_finished_jobs_reruns_changed_ones_and_resume_false_reruns_all(tmp_path):
    """A sweep of a diverging (lr 10) and a completing job, run four times into one folder: again with the
    second job's lr changed (refused without trainer.overwrite, which would replace a finished result;
    with it, the diverged job is skipped and the changed one re-runs), then twice with
    trainer.resume=false (both re-run each time, the second time with nothing else changed). A skipped
    job keeps its summary.json, history.csv and W&B run; a re-run job gets new files and a new W&B run that
    replaces the earlier one (one run per job folder, always)."""
    jobs, first = sweep(tmp_path, "optimizer.lr=10,0.005")
    assert [s["status"] for s in first] == ["diverged", "completed"]
    before = {n: {f: (jobs[n] / f).read_bytes() for f in ("summary.json", "history.csv")} for n in (0, 1)}
    assert [len(offline_runs(job)) for job in jobs] == [1, 1]

    refused = run_cli(*TINY, "optimizer.lr=10,0.004", "hydra.sweep.dir=multirun/resume", "--multirun", cwd=tmp_path)
    assert refused.returncode != 0 and "run of another config (optimizer.lr=0.005)" in refused.stderr
    assert {f: (jobs[1] / f).read_bytes() for f in ("summary.json", "history.csv")} == before[1]
    jobs, second = sweep(tmp_path, "optimizer.lr=10,0.004", "trainer.overwrite=true")
    assert {f: (jobs[0] / f).read_bytes() for f in ("summary.json", "history.csv")} == before[0]
    assert "skipping it" in (jobs[0] / "nesterov_landscape.log").read_text()
    assert second[1]["config"]["optimizer"]["lr"] == 0.004 and second[1]["status"] == "completed"
    assert second[1]["wandb"]["id"] != first[1]["wandb"]["id"]
    assert (jobs[1] / "history.csv").read_bytes() != before[1]["history.csv"]
    assert [len(offline_runs(job)) for job in jobs] == [1, 1]
    assert has_run(jobs[0], first[0]["wandb"]["id"]) and not has_run(jobs[1], first[1]["wandb"]["id"])
    logged_matches_files(jobs[1], second[1])

    jobs, third = sweep(tmp_path, "optimizer.lr=10,0.004", "trainer.resume=false")  # the same configs
    assert [len(offline_runs(job)) for job in jobs] == [1, 1]
    assert third[0]["status"] == "diverged" and third[0]["epochs_run"] == first[0]["epochs_run"]
    assert third[1]["final_loss"] == second[1]["final_loss"]  # the same training, so the same weights
    for job, summary in zip(jobs, third):
        assert run_dir(job, summary["wandb"]["id"]).exists()
    # the same command again: nothing changed but trainer.resume=false, and both jobs run once more
    jobs, fourth = sweep(tmp_path, "optimizer.lr=10,0.004", "trainer.resume=false")
    assert [len(offline_runs(job)) for job in jobs] == [1, 1]
    assert [s["config"] for s in fourth] == [s["config"] for s in third]
    assert fourth[0]["config"]["trainer"]["resume"] is False
    for job, before_summary, summary in zip(jobs, third, fourth):
        assert summary["wandb"]["id"] != before_summary["wandb"]["id"]
        assert has_run(job, summary["wandb"]["id"]) and not has_run(job, before_summary["wandb"]["id"])
    assert fourth[0]["status"] == "diverged" and fourth[1]["final_loss"] == third[1]["final_loss"]
    logged_matches_files(jobs[1], fourth[1])


@pytest.mark.parametrize("launcher", ["basic", "batched"])
def test_a_sweeps_wandb_group_is_its_sweep_dir_as_given_whichever_the_launcher(tmp_path, launcher):
    """The group names the sweep the same way through every launcher: hydra.sweep.dir as given,
    relative here, with "/" replaced by "_"; summary.json and the W&B run agree."""
    result = run_cli(
        *TINY,
        "probe=none",
        "seed=0,1",
        f"hydra/launcher={launcher}",
        "hydra.sweep.dir=multirun/g",
        "--multirun",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for n in (0, 1):
        job = tmp_path / "multirun" / "g" / str(n)
        summary = json.loads((job / "summary.json").read_text())
        assert summary["wandb"]["group"] == "multirun_g"
        assert run_record(records(run_dir(job, summary["wandb"]["id"])))["run_group"] == "multirun_g"
