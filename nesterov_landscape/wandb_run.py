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


def remove_stale_runs(job_dir: Path) -> None:
    """One W&B run per job folder: a job that starts again removes the run(s) an earlier attempt
    left in <job>/wandb/ (an offline run killed mid-way says "running" forever, and `wandb sync`
    would upload it beside the new one). The job's own files are the record; an earlier online
    attempt stays on the server, marked crashed by W&B."""
    shutil.rmtree(job_dir / "wandb", ignore_errors=True)


def start_run(mode: str, init_timeout: float, **init_kwargs: Any) -> tuple[Any, str]:
    """wandb.init in `mode`, with the run's files under init_kwargs["dir"]; returns (run, mode used).

    Online needs credentials and the server. Left alone, wandb waits at an account prompt forever
    in a terminal, about init_timeout + 10 s without network, and 10 s more looking up the user
    name for its greeting. Here a job without credentials never reaches the prompt, the start is
    bounded by init_timeout, the greeting is skipped, and any failure falls back to offline with a
    warning: the job runs, and `wandb sync` uploads it later."""
    Path(init_kwargs["dir"]).mkdir(parents=True, exist_ok=True)
    init_kwargs.setdefault("reinit", "finish_previous")
    if mode == "online":
        reason = "no credentials: run `wandb login` or set WANDB_API_KEY"
        if has_credentials():
            try:
                run = wandb.init(
                    mode="online",
                    settings=wandb.Settings(init_timeout=init_timeout, silent=True, **LEAN),
                    **init_kwargs,
                )
                log.info("W&B run online at %s", run.url)
                return run, "online"
            except Exception as error:  # wandb raises UsageError, CommError, TimeoutError, ...
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        log.warning("W&B online mode failed (%s); logging offline instead, upload later with `wandb sync`", reason)
        mode = "offline"
    return wandb.init(mode=mode, settings=wandb.Settings(silent=True, **LEAN), **init_kwargs), mode


def log_landscape(run: Any, columns: dict[str, list[float]], step: int) -> None:
    """The probe's grid as a W&B table with line plots of phi, phi'' and mu against t. W&B keeps at
    most wandb.Table.MAX_ROWS rows of a logged table and drops the rest, the end of the segment:
    a longer grid is thinned to every k-th point instead (landscape.csv has every point)."""
    names = list(columns)
    rows = [list(row) for row in zip(*columns.values())]
    stride = -(-len(rows) // wandb.Table.MAX_ROWS)
    if stride > 1:
        limit = wandb.Table.MAX_ROWS
        log.info(
            "W&B landscape table: one grid point in %d of %d (W&B keeps at most %d rows)", stride, len(rows), limit
        )
        rows = rows[::stride]
    table = wandb.Table(columns=names, data=rows)
    titles = {"phi": "phi(t) = L(w + t g)", "phi_dd": "phi''(t), central differences", "mu": "strong-aiming mu(t)"}
    run.log(
        {
            "landscape/table": table,
            **{f"landscape/{y}": wandb.plot.line(table, "t", y, title=title) for y, title in titles.items()},
        },
        step=step,
    )
