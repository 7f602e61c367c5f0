"""A sweep on W&B as a user meets it: every job's run in one `wandb leet` screen (a real terminal in
tmux), the analysis run's Figure 3 and loss tables with their charts, `make sync` offline."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multirun_analysis.wandb_sweep import link_runs

from .helpers import ROOT, TINY, run_cli
from .wandb_offline import offline_runs, overview, records

pytestmark = pytest.mark.slow


def wandb_env(root: Path) -> dict[str, str]:
    """No user's W&B settings, credentials or leet layout (conftest's isolation, for a module's sweep)."""
    env = {f"WANDB_{name}_DIR": str(root / f"wandb-{name.lower()}") for name in ("CONFIG", "CACHE", "DATA")}
    return env | {"NETRC": str(root / "no-netrc"), "WANDB_SILENT": "true"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Three seeds of a tiny job, probed on the gradient line (W&B tables and charts), and its analysis
    (W&B offline, as `make analysis`)."""
    root = tmp_path_factory.mktemp("sweep")
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_MODE")} | wandb_env(root)
    result = run_cli(*TINY, "seed=0,1,2", f"hydra.sweep.dir={root / 'sweep'}", "--multirun", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    analysis = subprocess.run(
        [sys.executable, "-m", "multirun_analysis", str(root / "sweep")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert analysis.returncode == 0, analysis.stderr
    return root / "sweep"


def job_run(job: Path) -> Path:
    (run,) = offline_runs(job)
    return run


def screen_of_leet(sweep: Path, tmp_path: Path) -> str:
    """`python -m multirun_analysis.wandb_sweep leet SWEEP` (make leet) in a 200x50 tmux terminal, the
    screen once its charts are drawn."""
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    env = " ".join(f"{k}={v}" for k, v in wandb_env(tmp_path).items())
    command = f"cd {ROOT} && env {env} {sys.executable} -m multirun_analysis.wandb_sweep leet {sweep}; sleep 60"
    subprocess.run([*tmux, "new-session", "-d", "-x", "200", "-y", "50", command], check=True)
    try:
        deadline, screen = time.monotonic() + 20, ""
        while time.monotonic() < deadline and "train/loss" not in screen:
            time.sleep(0.5)
            screen = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout
        time.sleep(1)  # the other runs' curves
        return subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal (apt-get install tmux)")
def test_make_leet_shows_every_jobs_run_selected_with_the_loss_chart_and_no_bookkeeping(sweep, tmp_path):
    screen = screen_of_leet(sweep, tmp_path)
    assert "Runs [3 items]" in screen, screen
    for job in ("0", "1", "2"):
        name = job_run(sweep / job).name
        assert f"● {name}" in screen or f"▶ {name}" in screen, (name, screen)  # selected: curves overlaid
    # two charts, the measurements; no epoch series, no table sizes (landscape/table.ncols, ...)
    assert "Metrics [1-2 of 2]" in screen, screen
    assert "│train/loss" in screen and "│train/grad_norm" in screen, screen
    assert "│epoch" not in screen and ".ncols" not in screen and ".nrows" not in screen, screen


def test_the_analysis_run_holds_figure_3_and_the_loss_curves_of_the_group(sweep):
    """The analysis run's Figure 3 table is every job's landscape.csv with run and seed columns; its
    loss table every job's history.csv as log10; charts overlay the seeds; its history holds only
    the figures (images, which leet shows as media, not charts)."""
    (run,) = (sweep / "analysis" / "wandb").glob("offline-run-*")
    info, run_records = overview(run), records(run)
    tables = {}
    for key in ("figure3/00_all_runs/table", "loss/00_all_runs/table"):
        tables[key] = json.loads((run / "files" / info["summary"][key]["path"]).read_text())
    figure3, loss = tables["figure3/00_all_runs/table"], tables["loss/00_all_runs/table"]
    assert figure3["columns"] == ["run", "seed", "t", "phi_dd", "mu", "mu_view"]
    assert loss["columns"] == ["run", "seed", "epoch", "log10_loss"]
    expected_figure3, expected_loss = [], []
    for seed in (0, 1, 2):
        job = sweep / str(seed)
        for row in read_rows(job / "landscape.csv"):
            mu = float(row["mu"])  # nan below mu_cutoff; mu_view is nan below |t| = 0.1 too
            shown = mu if abs(float(row["t"])) >= 0.1 else math.nan
            expected_figure3.append([str(job), seed, float(row["t"]), float(row["phi_dd"]), mu, shown])
        for row in read_rows(job / "history.csv"):
            expected_loss.append([str(job), seed, int(row["epoch"]), pytest.approx(math.log10(float(row["loss"])))])
    assert blank_nan(figure3["data"]) == blank_nan(expected_figure3)
    assert loss["data"] == expected_loss
    charts = {}
    for record in run_records:
        if record.get("type") == "config":
            for key, value in record["config"]["update"].items():
                if key.startswith("_wandb.visualize."):
                    charts[key.removeprefix("_wandb.visualize.")] = value["panel_config"]["fieldSettings"]
    assert charts == {
        "figure3/00_all_runs/phi_dd": {"x": "t", "y": "phi_dd", "stroke": "seed"},
        "figure3/00_all_runs/mu_view": {"x": "t", "y": "mu_view", "stroke": "seed"},
        "loss/00_all_runs/log10_loss": {"x": "epoch", "y": "log10_loss", "stroke": "seed"},
    }
    history_keys = {k for r in run_records if r.get("type") == "history" for k in r["history"]["item"]}
    assert {k.split(".")[0] for k in history_keys if not k.startswith("_")} == {
        "figures/landscape",
        "figures/loss_curves",
    }


def blank_nan(rows: list[list]) -> list[list]:
    """NaN as None, so that rows compare equal where both are NaN."""
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in rows]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def tree(folder: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(folder)): os.readlink(p) if p.is_symlink() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


@pytest.mark.parametrize(
    "env,reason",
    [
        ({}, "error: no W&B credentials: run `wandb login` or set WANDB_API_KEY; "),
        (
            {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"},
            "error: W&B at http://127.0.0.1:9 cannot",
        ),
    ],
)
def test_make_sync_without_credentials_or_server_says_so_in_one_line_and_changes_nothing(sweep, tmp_path, env, reason):
    before = tree(sweep)
    environment = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"} | wandb_env(tmp_path) | env
    command = [sys.executable, "-m", "multirun_analysis.wandb_sweep", "sync", str(sweep)]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(reason) and line.endswith(
        f"nothing was uploaded, the {len(sync_runs(sweep))} offline runs stay in {sweep}"
    )
    assert tree(sweep) == before


def sync_runs(sweep: Path) -> list[Path]:
    return [*(job_run(sweep / job) for job in ("0", "1", "2")), *(sweep / "analysis" / "wandb").glob("offline-run-*")]


def test_make_sync_uploads_the_jobs_and_the_analysis_runs_not_yet_synced(sweep, tmp_path):
    """`make sync ARGS=--dry-run` lists what wandb sync would upload: each job's run and the analysis's,
    but not a run W&B marked synced (its .wandb.synced), nor the leet view's links."""
    link_runs(sweep)
    runs = sync_runs(sweep)
    assert len(runs) >= 4  # three jobs and at least one analysis
    synced = runs[1] / f"run-{runs[1].name.rsplit('-', 1)[1]}.wandb.synced"
    assert not synced.exists()  # the marker is this test's to write and to remove
    synced.write_text("")
    try:
        command = [sys.executable, "-m", "multirun_analysis.wandb_sweep", "sync", str(sweep), "--dry-run"]
        env = os.environ | wandb_env(tmp_path)
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    finally:
        synced.unlink()
    assert result.returncode == 0, result.stderr
    listed = [line.split()[-1] for line in result.stderr.splitlines() if line.strip().endswith(".wandb")]
    assert sorted(listed) == sorted(str(next(run.glob("run-*.wandb"))) for run in runs if run != runs[1])


def test_the_leet_view_replaces_its_own_links_and_keeps_everything_else(sweep, tmp_path):
    """Job 0 run again gets a new run folder: the view links it instead of the old one. A user's file,
    a link named like a run and a folder in <sweep>/wandb/ are not the tool's and stay as they were."""
    view, problems = link_runs(sweep)
    assert problems == []
    old = job_run(sweep / "0").name
    (view / "notes.txt").write_text("mine\n")
    foreign = "offline-run-20990101_000000-abcdef12"
    (view / foreign).symlink_to(tmp_path)
    (view / "offline-run-20990101_000000-folder99").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"} | wandb_env(tmp_path)
    again = run_cli(*TINY, "seed=0", "trainer.resume=false", f"hydra.run.dir={sweep / '0'}", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    new = job_run(sweep / "0").name
    assert new != old
    view, problems = link_runs(sweep)
    assert problems == []
    runs = {job_run(sweep / job).name: job_run(sweep / job) for job in ("0", "1", "2")}
    links = {p.name: p for p in view.iterdir() if p.is_symlink() and p.name != foreign}
    assert links.keys() == runs.keys() and old not in links
    for name, link in links.items():
        assert os.readlink(link) == os.path.relpath(runs[name], view) and link.resolve() == runs[name].resolve()
    assert (view / "notes.txt").read_text() == "mine\n" and os.readlink(view / foreign) == str(tmp_path)
    assert (view / "offline-run-20990101_000000-folder99").is_dir()
    assert json.loads((view / ".wandb-leet.json").read_text()) == {"selected_runs": sorted(runs)}


def test_the_leet_view_removes_only_links_its_manifest_lists(sweep, tmp_path):
    """A name the view's manifest lists is removed only while it is a link as the tool writes them:
    not where a user has put a folder, a file or a link of their own at that name since, and never
    a name of another shape written into the manifest (a path out of the view)."""
    copy = tmp_path / "sweep"
    # the sweep without its view (another test of the module leaves a user's link there)
    shutil.copytree(sweep, copy, symlinks=True, ignore=lambda folder, _: ["wandb"] if Path(folder) == sweep else [])
    view, _ = link_runs(copy)
    mine = job_run(copy / "1").name
    (view / mine).unlink()
    (view / mine).mkdir()  # a user's copy of the run where the tool's link was
    (view / mine / "notes.txt").write_text("mine\n")
    linked = job_run(copy / "2").name
    (view / linked).unlink()
    (view / linked).symlink_to(tmp_path)  # a user's link where the tool's was
    other = "offline-run-20990101_000000-file0001"
    (view / other).write_text("a user's file\n")
    (copy / "victim.txt").write_text("outside the view\n")
    with (view / ".manifest").open("a") as manifest:
        manifest.write(f"{other}\n../victim.txt\n{copy / 'victim.txt'}\n")
    view, problems = link_runs(copy)
    assert (view / mine / "notes.txt").read_text() == "mine\n"
    assert (view / other).read_text() == "a user's file\n"
    assert (copy / "victim.txt").read_text() == "outside the view\n"
    assert os.readlink(view / linked) == str(tmp_path)
    assert problems == [f"{view / name} is not a link this tool made; left as it is" for name in sorted([mine, linked])]
    assert {p.name for p in view.iterdir() if p.is_symlink()} == {job_run(copy / j).name for j in ("0", "2")}
