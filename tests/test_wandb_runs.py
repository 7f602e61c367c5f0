"""What a job leaves in its offline W&B run, read back from the run itself and compared with the job's
own files: config, history, landscape table and plots, summary scalars, name and group; and what
re-running a sweep into its folder does to the files and the W&B runs (the basic launcher)."""

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


def test_a_jobs_wandb_run_holds_its_config_history_landscape_and_summary(tmp_path):
    """A job probed every 5 epochs and at its end (23) on a grid of 2,001 points: 6 checkpoints, 12,006 rows
    of landscape.csv, more than the 10,000 W&B keeps of a table, so its table keeps every other point of
    each checkpoint's grid."""
    job = tmp_path / "job"
    overrides = [
        *TINY,
        "trainer.epochs=23",
        "probe=[gradient_line]",
        "probe.gradient_line.every=5",
        "probe.gradient_line.t_step=0.001",
        "probe.gradient_line.mu_cutoff=0.15",
        "probe.gradient_line.exact=true",  # its scalars (mu_exact_min_*) reach the W&B summary too
    ]
    result = run_cli(*overrides, f"hydra.run.dir={job}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((job / "summary.json").read_text())
    (run,) = offline_runs(job)
    assert run.name.endswith(f"-{summary['wandb']['id']}")
    info, run_records = overview(run), records(run)
    assert info["state"] == "finished" and info["exit_code"] == 0
    # the config: the job's resolved config, as summary.json records it
    assert public(info["config"]) == summary["config"]
    # name: the command-line overrides, sorted as Hydra's override_dirname (hydra.run.dir left out); no group
    assert info["name"] == ",".join(sorted(overrides)) == summary["job"]["override_dirname"]
    assert not run_record(run_records).get("run_group") and summary["wandb"]["group"] is None
    # history: every row of history.csv at W&B step = its epoch, the last at 23 (not a multiple of log_every)
    history = read_csv(job / "history.csv")
    logged = history_rows(run_records)
    assert [row["_step"] for row in logged] == [row["epoch"] for row in history] == [0, 5, 10, 15, 20, 23]
    for ours, theirs in zip(history, logged):
        assert (theirs["train/loss"], theirs["train/grad_norm"]) == (ours["loss"], ours["grad_norm"])
    # what leet and the web chart: the measurements, no epoch series, no table sizes (.ncols, .nrows)
    charted = {key for record in run_records if record.get("type") == "history" for key in record["history"]["item"]}
    assert {key for key in charted if not key.startswith("_")} == {"train/loss", "train/grad_norm"}
    # metric definitions: the summary keeps the loss's minimum beside its last value
    metrics = {r["metric"]["name"]: r["metric"] for r in run_records if r.get("type") == "metric"}
    assert metrics["train/loss"]["summary"] == {"min": True, "last": True}
    losses = [row["loss"] for row in history]
    assert info["summary"]["train/loss"] == {"min": min(losses), "last": losses[-1]}
    # the landscape table: landscape.csv's epoch, t, phi, phi'', mu; every other grid point of each checkpoint
    landscape = read_csv(job / "landscape.csv")
    table_ref = info["summary"]["landscape/table"]
    table = json.loads((run / "files" / table_ref["path"]).read_text())
    assert table["columns"] == ["epoch", "t", "phi", "phi_dd", "mu"]
    epochs = sorted({row["epoch"] for row in landscape})
    assert epochs == [0, 5, 10, 15, 20, 23] and len(landscape) == 6 * 2001
    kept = [row for epoch in epochs for row in [r for r in landscape if r["epoch"] == epoch][::2]]
    assert (table_ref["nrows"], len(table["data"])) == (len(kept), 6 * 1001)
    for row, logged_row in zip(kept, table["data"]):
        assert all(same_number(row[c], v) for c, v in zip(table["columns"], logged_row)), (row["epoch"], row["t"])
    assert sum(math.isnan(r[4]) for r in table["data"]) == 6 * 149  # |t| < 0.15: t = -0.148, ..., 0.148
    # its three line charts: phi, phi'' and mu against t, a line per checkpoint, on the one table
    charts = {}
    for record in run_records:
        if record.get("type") == "config":
            for key, value in record["config"]["update"].items():
                if key.startswith("_wandb.visualize.landscape/"):
                    charts[key.removeprefix("_wandb.visualize.landscape/")] = value["panel_config"]
    assert sorted(charts) == ["mu", "phi", "phi_dd"]
    for y, chart in charts.items():
        assert chart["fieldSettings"] == {"x": "t", "y": y, "stroke": "epoch"}
        assert f"landscape/{y}_table" in json.dumps(chart["userQuery"])
        assert info["summary"][f"landscape/{y}_table"]["path"] == table_ref["path"]
    # the summary scalars: those of summary.json (null there, such as mu_min_0p1 inside the cutoff, is absent)
    scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    assert {"final_loss", "phi_dd_min_0p1", "mu_min_1", "mu_exact_min_0p5", "status"} <= set(scalars)
    assert summary["mu_min_0p1"] is None and "mu_min_0p1" not in info["summary"]
    for key, value in scalars.items():
        assert info["summary"][key] == value, key
    assert not {k for k in info["summary"] if k not in scalars and not k.startswith(("_", "train/", "landscape/"))}


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
