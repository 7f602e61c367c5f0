"""One W&B run per job: offline by default, online with a bounded, non-interactive start."""

import logging
import netrc
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse
from typing import Any

import wandb

log = logging.getLogger(__name__)

# What a job's run leaves out, each costing time in every job of a sweep: system metrics, console
# capture, git, code and requirements (the job's own log file and summary.json keep the record).
# wandb.init takes about 0.03 s with these off, 0.13 s with them on (offline, this machine).
LEAN = dict(
    console="off",
    x_disable_stats=True,
    x_disable_meta=True,
    x_disable_machine_info=True,
    disable_git=True,
    save_code=False,
    disable_code=True,
    x_save_requirements=False,
)


def has_credentials() -> bool:
    """What `wandb login` leaves behind (an API key in the environment or in ~/.netrc for the W&B
    host), read without network and without wandb's interactive prompt."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


# Why online W&B failed in this process, once it has: later jobs of the process (a sweep's worker)
# go offline at once instead of each waiting init_timeout for the same unreachable server.
_online_failed: str | None = None


def start_run(mode: str, init_timeout: float, **init_kwargs: Any) -> tuple[Any, str]:
    """wandb.init in `mode`, with the run's files under init_kwargs["dir"] and the run id
    init_kwargs["id"]; returns (run, mode used).

    Online needs credentials and the server. Left alone, wandb waits at an account prompt forever
    in a terminal, about init_timeout + 10 s without network, and 10 s more looking up the user
    name for its greeting. Here a job without credentials never reaches the prompt, the start is
    bounded by init_timeout, the greeting is skipped, and a failure falls back to offline with a
    warning, once per process: the job runs, and `wandb sync` uploads it later. If W&B cannot start
    at all (its folder unwritable, say), the job runs without it: its own files are the record."""
    global _online_failed
    Path(init_kwargs["dir"]).mkdir(parents=True, exist_ok=True)
    init_kwargs.setdefault("reinit", "finish_previous")
    if mode == "online":
        if _online_failed is None:
            _online_failed = "no credentials: run `wandb login` or set WANDB_API_KEY"
            if has_credentials():
                try:
                    run = wandb.init(
                        mode="online",
                        settings=wandb.Settings(init_timeout=init_timeout, silent=True, **LEAN),
                        **init_kwargs,
                    )
                    _online_failed = None
                    log.info("W&B run online at %s", run.url)
                    return run, "online"
                except Exception as error:  # wandb raises UsageError, CommError, TimeoutError, ...
                    _online_failed = first_line(error)
                    remove_failed_online_run(Path(init_kwargs["dir"]), init_kwargs["id"])
                    init_kwargs["id"] += "o"  # wandb keeps the failed id taken in this process
            log.warning("W&B online mode failed (%s); logging offline, upload later with `wandb sync`", _online_failed)
        else:
            log.warning("W&B online mode failed earlier in this process (%s); logging offline", _online_failed)
        mode = "offline"
    try:
        return wandb.init(mode=mode, settings=wandb.Settings(silent=True, **LEAN), **init_kwargs), mode
    except Exception as error:
        log.warning("W&B could not start (%s); the job runs without W&B, its files are the record", first_line(error))
        return wandb.init(mode="disabled", settings=wandb.Settings(silent=True), **init_kwargs), "disabled"


def first_line(error: BaseException) -> str:
    """The error's first line of text, or its type where it has none (W&B's can read "<no message>")."""
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return text if text and not text.startswith("<no message") else type(error).__name__


def remove_failed_online_run(job_dir: Path, run_id: str) -> None:
    """The folder a failed online start left (wandb/run-<time>-<id>): this job's own, by its id."""
    for path in (job_dir / "wandb").glob(f"run-*-{run_id}"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)


def log_table(run: Any, table: Any, step: int) -> None:
    """A probe's WandbTable (nesterov_landscape/probes/) as a W&B table with its line plots. W&B
    keeps at most wandb.Table.MAX_ROWS rows of a logged table and drops the rest, the end of the
    segment: a longer table is thinned to every k-th row instead (the probe's CSV file has every row)."""
    names = list(table.columns)
    rows = [list(row) for row in zip(*table.columns.values())]
    stride = -(-len(rows) // wandb.Table.MAX_ROWS)
    if stride > 1:
        limit = wandb.Table.MAX_ROWS
        log.info("W&B %s table: one row in %d of %d (W&B keeps at most %d rows)", table.key, stride, len(rows), limit)
        rows = rows[::stride]
    logged = wandb.Table(columns=names, data=rows)
    run.log(
        {
            f"{table.key}/table": logged,
            **{
                f"{table.key}/{y}": wandb.plot.line(logged, table.x, y, title=title) for y, title in table.plots.items()
            },
        },
        step=step,
    )


def log_file_artifact(run: Any, path: Path, name: str, kind: str, metadata: dict[str, Any]) -> None:
    """A file of the job (its weights) as a W&B artifact of type `kind`; nothing with W&B disabled.
    Offline, W&B stages a copy in its data folder (WANDB_DATA_DIR) for `wandb sync` to upload."""
    if run.disabled:
        return
    artifact = wandb.Artifact(name, type=kind, metadata=metadata)
    artifact.add_file(str(path))
    run.log_artifact(artifact)
