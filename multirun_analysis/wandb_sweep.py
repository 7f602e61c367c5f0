"""A sweep's offline W&B runs together: every job's run in one `wandb leet` view, and an upload of
the jobs' and the analysis's runs with wandb's own parallel sync.

python -m multirun_analysis.wandb_sweep leet [SWEEP]   (make leet)
python -m multirun_analysis.wandb_sweep sync [SWEEP] [-n N] [--dry-run]   (make sync)

`wandb leet DIR` lists the run folders in DIR (and follows links to them), so the leet view is
<sweep>/wandb/: one link per job run, named as the run's folder, and leet's own record of the runs
it shows (.wandb-leet.json), written to select them all: the loss curves open overlaid. These are
the tool's files: <sweep>/wandb/.manifest lists them, and a later call replaces only what it lists,
never a file, a folder or a link it did not make."""

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from nesterov_landscape import job_files

from .load import find_job_dirs

VIEW = "wandb"  # <sweep>/wandb/, where `wandb leet` finds the links
MANIFEST = ".manifest"
RUN_FOLDER = re.compile(r"(offline-)?run-\d{8}_\d{6}-[a-z0-9]+")  # the names W&B gives run folders
LEET_STATE = ".wandb-leet.json"  # where leet keeps the selected runs of the folder it shows
ANALYSIS_MARKER = ".multirun_analysis"  # report.OUT_MARKER: a folder the analysis wrote


def job_runs(sweep: Path) -> list[Path]:
    """Every job's W&B run folders, as the job's manifest records them (none of another program's)."""
    runs = []
    for job in find_job_dirs(sweep):
        runs += [job / name for name in job_files.written_results(job) if name.startswith(f"{job_files.WANDB_DIR}/")]
    return runs


def analysis_runs(sweep: Path) -> list[Path]:
    """The W&B runs of the sweep's analyses (`make analysis` writes them to <sweep>/analysis/wandb/)."""
    out = sweep / "analysis"
    if not (out / ANALYSIS_MARKER).is_file():
        return []
    return sorted(path for path in (out / VIEW).glob("*run-*") if RUN_FOLDER.fullmatch(path.name) and path.is_dir())


def recorded(view: Path) -> list[str]:
    """What an earlier call wrote, as its manifest lists it: only names of the shapes it writes."""
    try:
        text = (view / MANIFEST).read_text(errors="replace") if not (view / MANIFEST).is_symlink() else ""
    except FileNotFoundError:
        return []
    return [name for name in text.splitlines() if RUN_FOLDER.fullmatch(name) or name == LEET_STATE]


def _own_link(path: Path) -> bool:
    """Whether path is a link as link_runs writes them: relative, to the W&B run folder of its name
    in a job folder of the sweep (../<job>/wandb/<name>); not a link a user has put there since."""
    if not path.is_symlink():
        return False
    target = Path(os.readlink(path)).parts
    return (
        len(target) >= 4
        and target[0] == ".."
        and ".." not in target[1:]
        and target[-2:] == (job_files.WANDB_DIR, path.name)
    )


def write_manifest(view: Path, names: list[str]) -> None:
    text = "# links written here by multirun_analysis.wandb_sweep; it replaces exactly these\n"
    tmp = view / f"{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(text + "".join(f"{name}\n" for name in names))
    os.replace(tmp, view / MANIFEST)


def link_runs(sweep: Path) -> tuple[Path, list[str]]:
    """<sweep>/wandb/ holding a relative link to every job's W&B run, all selected in leet, replacing
    what an earlier call wrote (a job run again has a new run folder); returns the folder and what
    was left out. ValueError when <sweep>/wandb is not a folder (a file, or a link)."""
    view = sweep / VIEW
    if view.is_symlink() or (view.exists() and not view.is_dir()):
        raise ValueError(f"{view} is not a folder; the sweep's leet view needs that name (move it away)")
    view.mkdir(exist_ok=True)
    earlier = recorded(view)
    for name in earlier:
        if name != LEET_STATE and _own_link(view / name):  # never what a user has put at a name it once used
            (view / name).unlink()
    runs = {run.name: run for run in job_runs(sweep)}
    taken = sorted(name for name in runs if os.path.lexists(view / name))
    names = sorted(runs.keys() - set(taken))
    state = view / LEET_STATE
    own_state = not state.is_symlink() and (LEET_STATE in earlier or not state.exists())
    write_manifest(view, names + [LEET_STATE] * own_state)  # before writing: a call cut short owns what it made
    for name in names:
        os.symlink(os.path.relpath(runs[name], view), view / name)
    problems = [f"{view / name} is not a link this tool made; left as it is" for name in taken]
    if own_state:
        tmp = view / f"{LEET_STATE}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps({"selected_runs": names}, indent=2) + "\n")
        os.replace(tmp, state)
    else:
        problems.append(f"{state} is not this tool's: leet shows the runs it selects")
    return view, problems


def upload_problem(timeout: float = 10) -> str | None:
    """Why uploading cannot work now, found in seconds: wandb's sync itself waits without end for a
    server that does not answer."""
    from nesterov_landscape.wandb_run import base_url, has_credentials

    if not has_credentials():
        return "no W&B credentials: run `wandb login` or set WANDB_API_KEY"
    url = base_url()
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # the server answered
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return f"W&B at {url} cannot be reached ({reason})"
    return None


def sync(sweep: Path, parallel: int, dry_run: bool) -> int:
    """`wandb sync -n N` of the sweep's offline runs (W&B skips those it synced before)."""
    runs = [run for run in [*job_runs(sweep), *analysis_runs(sweep)] if run.name.startswith("offline-run-")]
    if not runs:
        print(f"no offline W&B runs in {sweep}")
        return 0
    problem = None if dry_run else upload_problem()
    if problem:
        print(f"error: {problem}; nothing was uploaded, the {len(runs)} offline runs stay in {sweep}", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "wandb", "sync", "-n", str(parallel), *(["--dry-run"] * dry_run)]
    return subprocess.run([*command, *map(str, runs)], stdin=subprocess.DEVNULL).returncode


class OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    from .report import latest_sweep

    parser = OneLineErrors(prog="python -m multirun_analysis.wandb_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["leet", "sync"])
    parser.add_argument("sweep", nargs="?", type=Path, help="sweep folder (default: the newest under --root)")
    parser.add_argument("--root", type=Path, default=Path("multirun"), help="where to look for the newest sweep")
    parser.add_argument("-n", type=int, default=8, help="sync: runs uploaded at a time (default 8)")
    parser.add_argument("--dry-run", action="store_true", help="sync: list the runs it would upload")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"-n {args.n} is not allowed; it must be an integer >= 1")
    try:
        sweep = args.sweep or latest_sweep(args.root)
        if not sweep.is_dir():
            raise FileNotFoundError(f"no such sweep folder: {sweep}")
        if args.command == "sync":
            return sync(sweep, args.n, args.dry_run)
        if (sweep / ".hydra").is_dir():  # one job: its own wandb/ is the view
            view, problems = sweep / VIEW, []
        else:
            view, problems = link_runs(sweep)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    os.execv(sys.executable, [sys.executable, "-m", "wandb", "leet", str(view)])


if __name__ == "__main__":
    sys.exit(main())
