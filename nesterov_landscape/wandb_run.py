"""One W&B run per job: offline by default, online with a bounded, non-interactive start."""

import logging
import netrc
import os
import shutil
from pathlib import Path, PurePosixPath
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


def base_url() -> str:
    """The W&B server this environment talks to: WANDB_BASE_URL, else wandb's default."""
    return os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url


def has_credentials() -> bool:
    """What `wandb login` leaves behind (an API key in the environment or in ~/.netrc for the W&B
    host), read without network and without wandb's interactive prompt. wandb's default host
    (api.forge.coreweave.com in 0.31) also takes a key saved for api.wandb.ai, the server behind it."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        keys = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return False
    hosts = {urlparse(base_url()).hostname} | ({"api.wandb.ai"} if base_url() == wandb.Settings().base_url else set())
    return any(keys.authenticators(host) for host in hosts)


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
                        resume="allow",  # a job's earlier attempt, cut short, is continued (job.wandb_run_id)
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


def group_name(sweep_dir: str) -> str:
    """A sweep's W&B group: hydra.sweep.dir as given, its parts joined by "_" (multirun/2026-11-26/10-00-00
    -> multirun_2026-11-26_10-00-00). The root and "."/".." parts are left out: W&B hides names that
    start with "_" as its own, and /tmp/x would give _tmp_x."""
    return "_".join(part for part in PurePosixPath(sweep_dir).parts if part.strip("/."))


def define_metrics(run: Any) -> None:
    """W&B's step is the epoch: every training row is logged at step=epoch (log_history_row), so the
    x axis of train/* is the epoch without an `epoch` series, which leet would draw as a chart of its
    own (it ignores define_metric's hidden). The summary keeps each series' minimum beside its last
    value (the loss, the gradient norm, what probes add such as the PL ratio): the last is not
    finite for a diverged run."""
    run.define_metric("train/*", summary="min,last")


def log_history_row(run: Any, row: dict[str, float]) -> None:
    """One history row (epoch, loss, grad_norm, ...) as train/* at step=epoch. An online re-run that
    resumed its cut-short run (start_run) starts at run.starting_step: the rows before it are in
    the run already, and W&B would drop each again with a warning."""
    if row["epoch"] >= run.starting_step:
        run.log({f"train/{k}": v for k, v in row.items() if k != "epoch"}, step=row["epoch"])


def log_table(run: Any, table: Any) -> None:
    """A probe's WandbTable (nesterov_landscape/probes/) as a W&B table with its line charts, one
    line per value of its `line` column (see line_charts)."""
    lines: dict[Any, list[list]] = {}
    at = table.columns.index(table.line) if table.line else None
    for row in table.rows:
        lines.setdefault(None if at is None else row[at], []).append(list(row))
    line_charts(run, table.key, table.columns, list(lines.values()), table.x, table.plots, table.line)


def line_charts(
    run: Any,
    prefix: str,
    columns: list[str],
    lines: list[list[list]],
    x: str,
    charts: dict[str, str],
    stroke: str | None,
) -> None:
    """The rows of `lines` (each the rows of one line: a checkpoint's grid, a run's loss curve) as
    table <prefix>/table and, for each column y of `charts`, a line chart <prefix>/<y> of y against
    x titled charts[y], one line per value of column `stroke`: the charts wandb.plot.line makes, but
    kept in the summary. Logged with run.log, a table also adds history keys <key>.ncols and .nrows,
    which leet draws as line charts; W&B's web charts read the table from the summary either way.
    W&B keeps at most wandb.Table.MAX_ROWS rows of a table and drops the rest, the end: a longer
    table keeps every k-th row of each line instead."""
    stride = 1
    while sum(-(-len(line) // stride) for line in lines) > wandb.Table.MAX_ROWS:
        stride += 1
    if stride > 1:
        log.info("W&B table %s/table: one row in %d (W&B keeps at most %d)", prefix, stride, wandb.Table.MAX_ROWS)
    table = wandb.Table(columns=columns, data=[row for line in lines for row in line[::stride]])
    summary = {f"{prefix}/table": table}
    for y, title in charts.items():
        chart = wandb.plot.line(table, x, y, stroke=stroke, title=title)
        chart.set_key(f"{prefix}/{y}")
        summary[chart.spec.table_key] = table  # one table file: a table is written once, where first logged
        run._config_callback(key=chart.spec.config_key, val=chart.spec.config_value)  # as run.log registers a chart
    run.summary.update(summary)


def log_file_artifact(run: Any, path: Path, name: str, kind: str, metadata: dict[str, Any]) -> None:
    """A file of the job (its weights) as a W&B artifact of type `kind`; nothing with W&B disabled.
    Offline, W&B stages a copy in its data folder (WANDB_DATA_DIR) for `wandb sync` to upload."""
    if run.disabled:
        return
    artifact = wandb.Artifact(name, type=kind, metadata=metadata)
    artifact.add_file(str(path))
    run.log_artifact(artifact)
