"""The job's own files: each written atomically (temp file in the same folder + rename), so a killed
job never leaves a file that looks complete, and each recorded in the folder's manifest before it is
written, so that the tool removes exactly what it wrote and nothing else.

Ownership. A job folder may hold other things: a user's notes, another program's results, another
project's W&B runs. The manifest (`.manifest`, one path per line, relative to the job folder) lists
what attempts of this tool wrote there; a W&B run is listed by a pattern that holds its run id. A
re-run removes the listed files of the earlier attempt, never anything else, and never a folder. A
folder holding result-named files (`summary.json`, `.hydra/config.yaml`, `wandb/` runs, ...) that
the manifest does not list is foreign: a job refuses it unless `trainer.overwrite=true`.
"""

import csv
import io
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

from .probes import PROBES
from .summary_schema import RESULTS

MANIFEST = ".manifest"
# What a job writes besides Hydra's files and its W&B run under wandb/: its final weights
# (nesterov_landscape/weights.py) and the files of every probe included.
WEIGHTS_FILE = "weights.safetensors"
REPROBE_DIR = "reprobe"  # <job>/reprobe/<name>/: a re-probe's folder (nesterov_landscape/reprobe/)
RESULT_FILES = (
    "summary.json",
    "history.csv",
    WEIGHTS_FILE,
    *(name for probe in PROBES.values() for name in probe.files),
)
# What Hydra (or the batched launcher, in its place) writes for a job before the job's code runs.
HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml")
WANDB_DIR = "wandb"
# Links W&B (re)makes in wandb/ at every start, pointing into the newest run.
WANDB_LINKS = ("latest-run", "debug.log", "debug-internal.log")
# A W&B run's manifest entry (wandb_run_entry), its run id the group.
WANDB_RUN_ENTRY = re.compile(rf"{WANDB_DIR}/\*-([a-z0-9]+)\*")
# Settings that do not change a job's numbers: a result made with other values is the same result.
NOT_RESULT_KEYS = ("logger", "trainer.resume", "trainer.overwrite", "trainer.max_memory_gb", "trainer.save_weights")


def recorded(folder: Path) -> list[str]:
    """The manifest's entries, in the order written; none for a folder the tool never wrote to.
    Only entries of the shapes the tool writes count: a hand-edited or copied manifest naming
    `../x`, `/etc/x` or `*` makes nothing the tool's."""
    path = folder / MANIFEST
    if path.is_symlink():  # not this tool's: it writes the manifest itself (linked_paths refuses it)
        return []
    try:
        text = path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line for line in text.splitlines() if _tool_entry(line)]


def _tool_entry(entry: str) -> bool:
    return (
        entry in RESULT_FILES
        or entry in HYDRA_FILES
        or re.fullmatch(r"[^/*?\[\]]+\.log", entry) is not None  # the job's log, <hydra.job.name>.log
        or WANDB_RUN_ENTRY.fullmatch(entry) is not None
    ) and ".." not in entry


def record(folder: Path, *entries: str) -> None:
    """Add entries to the manifest before the files they name are written (write-ahead: a job killed
    mid-write still owns what it left)."""
    known = set(recorded(folder))
    new = [e for e in dict.fromkeys(entries) if e not in known]
    if not new:
        return
    path = folder / MANIFEST
    header = "" if path.exists() else "# written here by nesterov_landscape; a re-run removes exactly these\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # never through a link
    with os.fdopen(fd, "a") as file:
        file.write(header + "".join(f"{e}\n" for e in new))


def wandb_run_entry(run_id: str) -> str:
    """The manifest entry of a W&B run: its folder (offline-run-<time>-<id> or run-<time>-<id>; the
    id may gain a suffix, see wandb_run.start_run)."""
    return f"{WANDB_DIR}/*-{run_id}*"


def recorded_wandb_run_ids(folder: Path) -> list[str]:
    """The W&B run ids the manifest records (wandb_run_entry), in the order written."""
    entries = (WANDB_RUN_ENTRY.fullmatch(entry) for entry in recorded(folder))
    return [match.group(1) for match in entries if match]


def _owned(name: str, entries: list[str]) -> bool:
    return any(name == e or _is_own_wandb_run(name, e) for e in entries)


def _is_own_wandb_run(name: str, entry: str) -> bool:
    """`name` is the W&B run folder that manifest entry wandb/*-<id>* stands for: exactly the name W&B
    gives it (offline-run-<date>_<time>-<id>, or run-..., the id maybe with start_run's "o"), so that
    a copy beside it (<folder>old) or a file named with the id is not the tool's."""
    match = WANDB_RUN_ENTRY.fullmatch(entry)
    return (
        match is not None
        and re.fullmatch(rf"{WANDB_DIR}/(offline-)?run-\d{{8}}_\d{{6}}-{match.group(1)}o?", name) is not None
    )


def foreign_files(folder: Path, log_name: str) -> list[str]:
    """Result-named entries in `folder` that no attempt of this tool recorded as its own: results,
    Hydra's files, the job's log `log_name`, W&B runs (links are linked_paths' to refuse)."""
    if not folder.is_dir():
        return []
    mine = recorded(folder)
    names = [*RESULT_FILES, *HYDRA_FILES, log_name]
    out = [n for n in names if ((folder / n).exists() or (folder / n).is_symlink()) and not _owned(n, mine)]
    wandb = folder / WANDB_DIR
    if wandb.is_symlink() or (wandb.exists() and not wandb.is_dir()):
        out.append(WANDB_DIR)
    elif wandb.is_dir():  # W&B's links it replaces at each start; anything else there must be the tool's
        runs = [p.name for p in wandb.iterdir() if not (p.name in WANDB_LINKS and p.is_symlink())]
        out += [f"{WANDB_DIR}/{n}" for n in sorted(runs) if not _owned(f"{WANDB_DIR}/{n}", mine)]
    return out


def result_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened config without the keys that do not change the numbers (NOT_RESULT_KEYS)."""
    flat = _flatten(json_safe(dict(config)))
    return {k: v for k, v in flat.items() if not any(k == n or k.startswith(f"{n}.") for n in NOT_RESULT_KEYS)}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_summary(folder: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


# summary.json's inode, modification time and size: write_json replaces it whole, so an equal stamp
# means nothing wrote it in between
SummaryStamp = tuple[int, int, int]


def summary_stamp(folder: Path) -> SummaryStamp | None:
    """The stamp of the folder's summary.json; None where there is none."""
    try:
        stat = (folder / "summary.json").stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def finished(summary: dict[str, Any] | None) -> bool:
    return summary is not None and summary.get("status") in RESULTS


def replaced_result(folder: Path, resolved: Mapping[str, Any]) -> str | None:
    """What running a job of config `resolved` in `folder` would replace: a finished run of another
    config (its differing keys named), or None."""
    summary = read_summary(folder)
    if not finished(summary) or not isinstance(summary.get("config"), dict):
        return None
    theirs, ours = result_identity(summary["config"]), result_identity(resolved)
    differing = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
    if not differing:
        return None
    shown = ", ".join(f"{k}={theirs.get(k)!r}" for k in differing[:3]) + (", ..." if len(differing) > 3 else "")
    return f"{folder} holds a {summary['status']} run of another config ({shown})"


def linked_paths(folder: Path, log_name: str) -> list[str]:
    """Links the tool (or Hydra for it) would write through: the folder itself, .hydra/ or its files,
    the log, the manifest, the claim, wandb/ (symbolic links), and those of these files that Hydra,
    the log and the tool write in place (hard links: a `cp -al` copy of a folder, say). Refused even
    with overwrite: nothing is followed out of where the job was asked to run."""
    if folder.is_symlink():
        return [f"{folder} (a symbolic link to {os.readlink(folder)})"]
    names = [
        ".hydra",
        *HYDRA_FILES,
        log_name,
        MANIFEST,
        ".claim",
        WANDB_DIR,
        *(f"{WANDB_DIR}/{n}" for n in WANDB_LINKS),
    ]
    out = []
    for name in names:
        path = folder / name
        if path.is_symlink() and not (name.startswith(f"{WANDB_DIR}/") and _links_into_own_run(path, folder)):
            out.append(f"{name} (a symbolic link)")
        elif path.is_file() and path.stat().st_nlink > 1:  # written in place: its other names would change too
            out.append(f"{name} (a hard link)")
    return out


def _links_into_own_run(link: Path, folder: Path) -> bool:
    """W&B's own links in wandb/ (latest-run, debug.log, ...), pointing into a run this tool wrote."""
    target = Path(os.readlink(link))
    return not target.is_absolute() and _owned(f"{WANDB_DIR}/{target.parts[0]}", recorded(folder))


def folder_problem(folder: Path, resolved: Mapping[str, Any], log_name: str, overwrite: bool) -> str | None:
    """Why a job of config `resolved` may not write into `folder`: links it would write through
    (always), else, unless `overwrite`, files this tool did not write or another config's result."""
    links = linked_paths(folder, log_name)
    if links:
        return f"{folder} holds {', '.join(links[:4])}, which the job would write through"
    if overwrite:
        return None
    foreign = foreign_files(folder, log_name)
    if foreign:
        listed = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        return f"{folder} holds files this tool did not write ({listed})"
    return replaced_result(folder, resolved)


def missing_results(folder: Path, summary: Mapping[str, Any]) -> list[str]:
    """The files a finished summary says its job wrote that are gone (deleted by hand, say)."""
    listed = summary.get("files")
    if not isinstance(listed, list):  # a summary from before the manifest: its history at least
        listed = ["history.csv"]
    return [name for name in listed if not any(folder.glob(name))]


def written_results(folder: Path) -> list[str]:
    """The job's files as they are now, for summary.json's `files`: results and its W&B run (not
    Hydra's files or the log, which say how it ran, not what it found)."""
    out = []
    for entry in recorded(folder):
        if entry in HYDRA_FILES or entry.endswith(".log"):
            continue
        paths = [p.relative_to(folder).as_posix() for p in folder.glob(entry)]
        out += sorted(p for p in paths if not entry.startswith(f"{WANDB_DIR}/") or _is_own_wandb_run(p, entry))
    return out


def remove_previous_attempt(folder: Path) -> None:
    """A job that starts again in its folder (after a kill, Ctrl-C, a failure, or with
    trainer.overwrite) first removes exactly what the manifest says earlier attempts wrote, so the
    folder never mixes two attempts' files. Hydra's files and the log stay: Hydra has rewritten
    them for this attempt. Called only by the folder's claimant (job_claim)."""
    entries = recorded(folder)
    kept = [e for e in entries if e in HYDRA_FILES or e.endswith(".log")]
    for entry in entries:
        if entry in kept or (entry.startswith(f"{WANDB_DIR}/") and (folder / WANDB_DIR).is_symlink()):
            continue  # a wandb/ that links elsewhere is not followed
        for path in [*folder.glob(entry), *_temp_files(folder, entry)]:
            if entry.startswith(f"{WANDB_DIR}/"):
                own = _is_own_wandb_run(f"{WANDB_DIR}/{path.name}", entry)
                if own and path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)  # a W&B run folder, named with this tool's run id
            elif not path.is_dir() or path.is_symlink():  # a folder at a file's name is not the tool's
                path.unlink(missing_ok=True)
    wandb = folder / WANDB_DIR
    for name in WANDB_LINKS:
        link = wandb / name
        if link.is_symlink() and _owned(f"{WANDB_DIR}/{Path(os.readlink(link)).parts[0]}", entries):
            link.unlink()
    if entries:
        _rewrite_manifest(folder, kept)


def _temp_files(folder: Path, entry: str) -> list[Path]:
    """The temp files atomic_write_text leaves when killed mid-write: .<name>.tmp-<pid>."""
    path = Path(entry)
    if "*" in entry:
        return []
    return [p for p in (folder / path.parent).glob(f".{path.name}.tmp-*") if p.name.rpartition("-")[2].isdigit()]


def _rewrite_manifest(folder: Path, entries: list[str]) -> None:
    path = folder / MANIFEST
    text = "# written here by nesterov_landscape; a re-run removes exactly these\n" + "".join(f"{e}\n" for e in entries)
    tmp = path.with_name(f"{MANIFEST}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str, root: Path | None = None) -> None:
    atomic_write_bytes(path, text.encode(), root)


def atomic_write_bytes(path: Path, data: bytes, root: Path | None = None) -> None:
    """Write `path` whole or not at all; `root` is the job folder whose manifest records it
    (default: the file's own folder). A failed write (a full disk) leaves no temp file behind."""
    root = root or path.parent
    record(root, str(path.relative_to(root)))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def json_safe(value: Any) -> Any:
    """Non-finite floats become null: strict JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
