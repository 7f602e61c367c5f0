"""The tool never touches what it did not write, and never reports lost results as completed: each
case through `python -m nesterov_landscape` on real folders (issue 17's reproductions)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from nesterov_landscape.job_files import write_json

from .helpers import TINY, run_analysis, run_cli

E = [*TINY, "trainer.epochs=10", "probe=none"]
FOREIGN = {
    "history.csv": "epoch,loss\n1,0.5\n",
    "landscape.csv": "t,phi\n0,1\n",
    "hessian.csv": "rank,eigenvalue\n1,2\n",
    "notes.txt": "my notes\n",
    "wandb/offline-run-other/run-other.wandb": "another project's run\n",
}


def plant(folder: Path, files: dict[str, str]) -> dict[str, tuple[bytes, int]]:
    """Write files into folder; return their contents and modification times to check later."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return snapshot(folder)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime; a link by where it points, since W&B links a run's
    logs/debug-core.log to a log its service process keeps appending to."""
    return {
        str(p.relative_to(folder)): (
            (os.readlink(p).encode(), 0) if p.is_symlink() else (p.read_bytes(), p.stat().st_mtime_ns)
        )
        for p in sorted(folder.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.guards("foreign files deleted")
def test_a_folder_holding_foreign_results_is_refused_and_left_as_it_was(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    before = plant(folder, FOREIGN)
    result = run_cli(*E, f"hydra.run.dir={folder}", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "history.csv" in line and "wandb/offline-run-other" in line and "trainer.overwrite=true" in line
    assert snapshot(folder) == before
    names = ["hessian.csv", "history.csv", "landscape.csv", "notes.txt", "wandb"]
    assert sorted(p.name for p in folder.iterdir()) == names


@pytest.mark.guards("foreign files deleted", "mixed")
def test_overwrite_replaces_only_same_named_files_and_deletes_nothing(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    before = plant(folder, FOREIGN)
    result = run_cli(*E, f"hydra.run.dir={folder}", "trainer.overwrite=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = snapshot(folder)
    for name in ("notes.txt", "landscape.csv", "hessian.csv", "wandb/offline-run-other/run-other.wandb"):
        assert after[name] == before[name]  # not the job's to touch: probe=none writes no landscape
    assert after["history.csv"] != before["history.csv"]
    assert summary(folder)["status"] == "completed"
    assert "landscape.csv" not in summary(folder)["files"]  # the foreign one is not this job's result
    analysed = run_analysis(str(folder), "--out", str(tmp_path / "analysis"), cwd=tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    runs = (tmp_path / "analysis" / "runs.csv").read_text()
    assert "completed" in runs and "landscape" not in (tmp_path / "analysis" / "problems.txt").read_text()


@pytest.mark.guards("foreign files deleted")
def test_a_rejected_config_touches_no_folder(tmp_path):
    """A typo in a user's Hydra-shaped folder: one line, exit 2, every file and folder as it was;
    and none made for a new folder, nor any pre-made empty parent removed."""
    folder = tmp_path / "hydra_app_output"
    folder.mkdir()
    before = plant(folder, {".hydra/my_config.yaml": "a: 1\n", "experiment_notes.log": "day 1\n"})
    result = run_cli(*E, "optimizer.lr=-1", f"hydra.run.dir={folder}", cwd=tmp_path)
    assert result.returncode == 2 and "optimizer.lr" in one_error_line(result)
    assert snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == [".hydra", "experiment_notes.log"]

    (tmp_path / "empty" / "parents").mkdir(parents=True)
    result = run_cli(*E, "optimizer.lr=-1", f"hydra.run.dir={tmp_path / 'empty/parents/new/job'}", cwd=tmp_path)
    assert result.returncode == 2
    assert (tmp_path / "empty" / "parents").is_dir() and not (tmp_path / "empty/parents/new").exists()


@pytest.mark.guards("foreign files deleted")
def test_a_symlinked_job_folder_is_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = plant(elsewhere, {"notes.txt": "keep\n"})
    (tmp_path / "link").symlink_to(elsewhere)
    result = run_cli(*E, f"hydra.run.dir={tmp_path / 'link'}", cwd=tmp_path)
    assert result.returncode == 2 and "symbolic link" in one_error_line(result)
    assert snapshot(elsewhere) == before and sorted(p.name for p in elsewhere.iterdir()) == ["notes.txt"]


@pytest.mark.guards("foreign files deleted")
@pytest.mark.parametrize("link", [".hydra", ".hydra/config.yaml", "nesterov_landscape.log", ".manifest", ".claim"])
def test_a_link_the_job_would_write_through_is_refused_even_with_overwrite(link, tmp_path):
    """Hydra, the log and the tool would write through these links into the user's file: refused
    with one line, overwrite or not, and the target untouched."""
    target = tmp_path / "precious"
    target.mkdir() if link == ".hydra" else target.write_text("precious\nnotes.txt\n")
    folder = tmp_path / "job"
    (folder / link).parent.mkdir(parents=True)
    (folder / link).symlink_to(target)
    (folder / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    for extra in ([], ["trainer.overwrite=true"]):
        result = run_cli(*E, f"hydra.run.dir={folder}", *extra, cwd=tmp_path)
        assert result.returncode == 2 and "symbolic link" in one_error_line(result), result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.guards("foreign files deleted")
def test_plain_files_at_wandbs_link_names_are_foreign(tmp_path):
    folder = tmp_path / "job"
    before = plant(folder, {"wandb/debug.log": "my debug notes\n", "wandb/debug-internal.log": "x\n"})
    result = run_cli(*E, f"hydra.run.dir={folder}", cwd=tmp_path)
    assert result.returncode == 2 and "wandb/debug.log" in one_error_line(result)
    assert snapshot(folder) == before


@pytest.mark.guards("foreign files deleted")
def test_a_config_that_cannot_be_resolved_touches_no_folder(tmp_path):
    folder = tmp_path / "job"
    before = plant(folder, {".hydra/config.yaml": "user: precious\n"})
    result = run_cli(*E, f"hydra.run.dir={folder}", "seed=${oc.env:NO_SUCH_VARIABLE_HERE}", cwd=tmp_path)
    assert result.returncode == 2 and "cannot be resolved" in one_error_line(result)
    assert snapshot(folder) == before


@pytest.mark.guards("foreign files deleted")
def test_a_rerun_removes_only_the_tools_own_kinds_of_paths(tmp_path):
    """A folder put where the job's history.csv was, and a file and folder in wandb/ named with the
    job's run id, are not the tool's: a re-run leaves them as they are."""
    folder = tmp_path / "job"
    assert run_cli(*E, f"hydra.run.dir={folder}", cwd=tmp_path).returncode == 0
    run_id = summary(folder)["wandb"]["id"]
    (folder / "history.csv").unlink()
    planted = {"history.csv/mine.txt": "a\n", f"wandb/notes-{run_id}.txt": "b\n"}
    planted[f"wandb/backup-{run_id}-copy/x"] = "c\n"
    before = {k: v for k, v in plant(folder, planted).items() if k in planted}
    again = run_cli(*E, f"hydra.run.dir={folder}", "trainer.resume=false", cwd=tmp_path)
    assert again.returncode != 0  # refused (the id-named files in wandb/ are not the tool's) or failed
    assert {k: v for k, v in snapshot(folder).items() if k in before} == before


@pytest.mark.guards("mixed", "duplicated", "foreign files deleted")
def test_a_rerun_removes_exactly_the_earlier_attempts_files(tmp_path):
    """The first attempt wrote landscape.csv; the second (probe=none, allowed to replace) writes
    none, so the first one's must go, W&B run included; the user's file beside them stays."""
    folder = tmp_path / "job"
    first = run_cli(*TINY, "trainer.epochs=10", f"hydra.run.dir={folder}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (first_run,) = folder.glob("wandb/offline-run-*")
    (folder / "notes.txt").write_text("mine\n")
    second = run_cli(*E, f"hydra.run.dir={folder}", "trainer.overwrite=true", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert not (folder / "landscape.csv").exists() and not first_run.exists()
    assert (folder / "notes.txt").read_text() == "mine\n"
    assert len(list(folder.glob("wandb/offline-run-*"))) == 1
    assert summary(folder)["files"] == sorted(
        [
            "history.csv",
            "summary.json",
            "weights.safetensors",
            str(next(folder.glob("wandb/offline-run-*")).relative_to(folder)),
        ]
    )


@pytest.mark.guards("foreign files deleted")
def test_a_manifest_names_nothing_outside_the_tools_own_kinds_of_files(tmp_path):
    """A hand-edited (or garbage) manifest cannot make the tool remove what it did not write:
    entries outside the shapes it writes (`../x`, an absolute path, `*`, a user's file) count for
    nothing."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    folder = tmp_path / "job"
    folder.mkdir()
    before = plant(folder, {"notes.txt": "mine\n", "data/raw.csv": "1,2\n"})
    lines = ["../outside.txt", str(outside), "*", "**/*", "notes.txt", "data", "wandb/*", ".", "\x00garbage"]
    (folder / ".manifest").write_text("\n".join(lines) + "\n")
    for attempt in range(2):  # the second attempt's clean-up reads the manifest the first extended
        result = run_cli(*E, f"hydra.run.dir={folder}", "trainer.resume=false", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert outside.read_text() == "keep\n"
    assert {k: v for k, v in snapshot(folder).items() if k in before} == before


@pytest.mark.guards("lost")
def test_another_config_does_not_replace_a_finished_result_unless_allowed(tmp_path):
    folder = tmp_path / "job"
    assert run_cli(*E, "seed=0", f"hydra.run.dir={folder}", cwd=tmp_path).returncode == 0
    kept = snapshot(folder)
    refused = run_cli(*E, "seed=1", f"hydra.run.dir={folder}", cwd=tmp_path)
    assert refused.returncode == 2
    line = one_error_line(refused)
    assert "completed run of another config (seed=0)" in line and "trainer.overwrite=true" in line
    assert snapshot(folder) == kept
    allowed = run_cli(*E, "seed=1", "trainer.overwrite=true", f"hydra.run.dir={folder}", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert summary(folder)["seed"] == 1 and len(list(folder.glob("wandb/offline-run-*"))) == 1


@pytest.mark.guards("lost")
def test_a_finished_job_that_lost_a_file_runs_again(tmp_path):
    folder = tmp_path / "job"
    assert run_cli(*E, f"hydra.run.dir={folder}", cwd=tmp_path).returncode == 0
    (folder / "history.csv").unlink()
    again = run_cli(*E, f"hydra.run.dir={folder}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    log = (folder / "nesterov_landscape.log").read_text()
    assert "lacks history.csv; running it again" in log and "already holds" not in log
    assert (folder / "history.csv").exists() and summary(folder)["status"] == "completed"


@pytest.mark.parametrize("launcher", ["basic", "batched"])
@pytest.mark.guards("foreign files deleted")
def test_a_sweep_job_folder_holding_foreign_files_is_not_touched(launcher, tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    before = plant(sweep / "0", {"history.csv": "theirs\n", "lab.log": "lab notes\n"})
    sweep_args = ["seed=0,1", f"hydra.sweep.dir={sweep}", f"hydra/launcher={launcher}", "--multirun"]
    result = run_cli(*E, *sweep_args, cwd=tmp_path)
    assert "sweep/0 holds files this tool did not write (history.csv)" in result.stderr
    assert {k: v for k, v in snapshot(sweep / "0").items() if k in before} == before
    assert not (sweep / "0" / "summary.json").exists()


@pytest.mark.guards("lost", "foreign files deleted")
def test_wandb_that_cannot_start_does_not_cost_the_job(tmp_path):
    """A file named wandb where W&B wants its folder: foreign, so refused; allowed, the job runs
    without W&B and its own files are complete."""
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "wandb").write_text("not a folder\n")
    assert run_cli(*E, f"hydra.run.dir={folder}", cwd=tmp_path).returncode == 2
    result = run_cli(*E, f"hydra.run.dir={folder}", "trainer.overwrite=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary(folder)["status"] == "completed" and summary(folder)["wandb"]["mode"] == "disabled"
    assert "W&B could not start" in (folder / "nesterov_landscape.log").read_text()
    assert (folder / "wandb").read_text() == "not a folder\n"
    assert len((folder / "history.csv").read_text().splitlines()) == 4  # header, epochs 0, 5 (log_every) and 10


@pytest.mark.guards("duplicated")
def test_online_fallback_happens_once_per_process_and_leaves_no_stray_run(tmp_path):
    sweep = tmp_path / "sweep"
    env = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    result = run_cli(
        *E, "seed=0,1,2", "logger.mode=online", "logger.init_timeout=3", "hydra/launcher=batched",
        "hydra.launcher.n_jobs=1", "hydra.launcher.runs_per_stack=1", f"hydra.sweep.dir={sweep}", "--multirun",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    logs = [(sweep / str(n) / "nesterov_landscape.log").read_text() for n in range(3)]
    assert sum("W&B online mode failed (" in log for log in logs) == 1
    assert sum("W&B online mode failed earlier in this process" in log for log in logs) == 2
    for n in range(3):
        assert summary(sweep / str(n))["wandb"]["mode"] == "offline"
        assert [p.name.split("-")[0] for p in (sweep / str(n) / "wandb").glob("*run-*")] == ["offline"]
    assert "<no message>" not in "".join(logs)


def test_wandb_mode_from_the_environment_and_the_command_line(tmp_path):
    """WANDB_MODE sets logger.mode's default; logger.mode on the command line wins over it."""
    env = {"WANDB_MODE": "disabled"}
    assert run_cli(*E, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path, env=env).returncode == 0
    assert not (tmp_path / "a" / "wandb").exists() and summary(tmp_path / "a")["wandb"]["mode"] == "disabled"
    assert run_cli(*E, "logger.mode=offline", f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path, env=env).returncode == 0
    assert len(list((tmp_path / "b").glob("wandb/offline-run-*"))) == 1
    bad = run_cli(*E, f"hydra.run.dir={tmp_path / 'c'}", cwd=tmp_path, env={"WANDB_MODE": "sometimes"})
    assert bad.returncode == 2 and "logger.mode" in one_error_line(bad) and not (tmp_path / "c").exists()


def test_radii_beyond_the_grid_are_refused(tmp_path):
    result = run_cli(*TINY, "probe.gradient_line.radii=[5.0]", f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "probe.gradient_line.radii" in one_error_line(result) and not (tmp_path / "job").exists()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB file system: room for a job's set-up, not for its W&B run and results."""

    def mount(size: str) -> Path:
        point = tmp_path / f"disk-{size}"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    mounted: list[Path] = []
    yield mount
    for point in mounted:
        subprocess.run(["umount", "--lazy", str(point)], check=True)  # W&B's service may still be closing


@needs_root
@pytest.mark.guards("lost")
def test_a_full_disk_fails_the_job_with_one_line_and_nothing_that_looks_finished(small_disk, tmp_path):
    disk = small_disk("64k")
    result = run_cli(*E, f"hydra.run.dir={disk / 'job'}", cwd=tmp_path)
    assert result.returncode == 1
    assert "No space left on device" in one_error_line(result)
    status = summary(disk / "job")["status"] if (disk / "job" / "summary.json").exists() else None
    assert status in (None, "failed")
    assert not list(disk.rglob("*.tmp-*"))
    again = run_cli(*E, f"hydra.run.dir={disk / 'job'}", cwd=tmp_path)  # not skipped as done
    assert "already holds" not in again.stderr + (disk / "job" / "nesterov_landscape.log").read_text()


@needs_root
@pytest.mark.guards("lost")
def test_write_json_is_all_or_nothing_on_a_full_disk(small_disk):
    """The earlier file stays whole when the new one does not fit, and no temp file is left."""
    disk = small_disk("16k")
    write_json(disk / "summary.json", {"status": "completed", "final_loss": 1e-10})
    before = (disk / "summary.json").read_text()
    with pytest.raises(OSError):
        write_json(disk / "summary.json", {"status": "failed", "padding": "x" * 100_000})
    assert (disk / "summary.json").read_text() == before
    assert sorted(p.name for p in disk.iterdir()) == [".manifest", "summary.json"]


@pytest.mark.guards("foreign files deleted")
def test_the_analysis_writes_only_into_a_folder_of_its_own(tmp_path):
    folder = tmp_path / "job"
    assert run_cli(*E, f"hydra.run.dir={folder}", cwd=tmp_path).returncode == 0
    theirs = tmp_path / "theirs"
    before = plant(theirs, {"report.md": "my report\n", "summary.csv": "a,b\n"})
    refused = run_analysis(str(folder), "--out", str(theirs), "--wandb-mode", "disabled", cwd=tmp_path)
    assert refused.returncode == 2 and "holds files the analysis did not write" in one_error_line(refused)
    assert snapshot(theirs) == before
    ours = tmp_path / "ours"
    for _ in range(2):  # an analysis writes again where it wrote before
        result = run_analysis(str(folder), "--out", str(ours), "--wandb-mode", "disabled", cwd=tmp_path)
        assert result.returncode == 0, result.stderr


@pytest.mark.guards("foreign files deleted")
def test_another_hydra_output_subdir_is_refused(tmp_path):
    folder = tmp_path / "job"
    before = plant(folder, {"meta/config.yaml": "user: precious\n"})
    for args in ([f"hydra.run.dir={folder}"], [f"hydra.sweep.dir={tmp_path / 'sweep'}", "seed=0,1", "--multirun"]):
        result = run_cli(*E, "hydra.output_subdir=meta", *args, cwd=tmp_path)
        assert result.returncode == 2 and "hydra.output_subdir" in one_error_line(result)
    assert snapshot(folder) == before and not (tmp_path / "sweep").exists()


@pytest.mark.guards("lost")
def test_a_sweep_none_of_whose_jobs_can_run_leaves_the_earlier_sweeps_record(tmp_path):
    """An all-invalid sweep into a finished sweep's folder: its multirun.yaml, by which the analysis
    tells the sweep's jobs from stale ones, stays the finished sweep's."""
    sweep = tmp_path / "sweep"
    assert run_cli(*E, "seed=0,1", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path).returncode == 0
    before = snapshot(sweep)
    result = run_cli(*E, "seed=0,1", "optimizer.lr=-1", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path)
    assert result.returncode != 0
    assert snapshot(sweep) == before


@pytest.mark.guards("foreign files deleted")
def test_hard_links_the_job_would_write_in_place_are_refused(tmp_path):
    """A user's file hard-linked at .manifest or .claim (or a whole folder copied with cp -al):
    the tool would change it in place through the other name."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    folder = tmp_path / "job"
    folder.mkdir()
    os.link(notes, folder / ".manifest")
    for extra in ([], ["trainer.overwrite=true"]):
        result = run_cli(*E, f"hydra.run.dir={folder}", *extra, cwd=tmp_path)
        assert result.returncode == 2 and "hard link" in one_error_line(result)
    assert notes.read_text() == "mine\n"


@pytest.mark.guards("foreign files deleted")
def test_a_copy_beside_the_jobs_wandb_run_is_not_the_tools(tmp_path):
    folder = tmp_path / "job"
    assert run_cli(*E, f"hydra.run.dir={folder}", cwd=tmp_path).returncode == 0
    (run,) = folder.glob("wandb/offline-run-*")
    copy = folder / "wandb" / f"{run.name}old"
    copy.mkdir()
    (copy / "backup.txt").write_text("mine\n")
    refused = run_cli(*E, f"hydra.run.dir={folder}", "trainer.resume=false", cwd=tmp_path)
    assert refused.returncode == 2 and f"wandb/{copy.name}" in one_error_line(refused)
    allowed = run_cli(*E, f"hydra.run.dir={folder}", "trainer.resume=false", "trainer.overwrite=true", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert (copy / "backup.txt").read_text() == "mine\n" and not run.exists()


@pytest.mark.guards("foreign files deleted")
def test_a_wandb_link_into_another_run_is_neither_followed_nor_removed(tmp_path):
    """W&B's link names (latest-run, debug.log) are removed by a re-run only where they point into the
    tool's own run; one pointing elsewhere is refused, overwrite or not, and stays."""
    elsewhere = tmp_path / "other-project-run"
    elsewhere.mkdir()
    folder = tmp_path / "job"
    (folder / "wandb").mkdir(parents=True)
    (folder / "wandb" / "latest-run").symlink_to(elsewhere)
    for extra in ([], ["trainer.overwrite=true"]):
        result = run_cli(*E, f"hydra.run.dir={folder}", *extra, cwd=tmp_path)
        assert result.returncode == 2 and "wandb/latest-run (a symbolic link)" in one_error_line(result)
    assert os.readlink(folder / "wandb" / "latest-run") == str(elsewhere)
