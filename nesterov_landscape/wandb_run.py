"""One W&B run per job: offline by default, online with a bounded, non-interactive start."""
import logging
from pathlib import Path
from typing import Any

import wandb

log = logging.getLogger(__name__)


def start_run(mode: str, init_timeout: float, **init_kwargs: Any) -> tuple[Any, str]:
    """wandb.init in `mode`, with the run's files under init_kwargs["dir"]; returns (run, mode used).

    Online needs credentials and the server: without credentials it would prompt (and wait
    forever in a terminal), without network it would wait about init_timeout + 10 s. Both fall back
    to offline with a warning, so the job runs and `wandb sync` uploads it later."""
    Path(init_kwargs["dir"]).mkdir(parents=True, exist_ok=True)
    init_kwargs.setdefault("reinit", "finish_previous")
    if mode == "online":
        if not wandb.login(prompt=False, verify=False):
            log.warning("W&B online mode needs credentials (wandb login or WANDB_API_KEY); "
                        "logging offline instead, upload later with `wandb sync`")
        else:
            try:
                run = wandb.init(mode="online", settings=wandb.Settings(init_timeout=init_timeout),
                                 **init_kwargs)
                return run, "online"
            except Exception as error:  # wandb raises several types for an unreachable server
                log.warning("W&B online init failed (%s); logging offline instead, upload later "
                            "with `wandb sync`", str(error).splitlines()[0] if str(error) else type(error).__name__)
        mode = "offline"
    return wandb.init(mode=mode, **init_kwargs), mode


def log_landscape(run: Any, columns: dict[str, list[float]], step: int) -> None:
    """The probe's grid as a W&B table with line plots of phi, phi'' and mu against t."""
    names = list(columns)
    table = wandb.Table(columns=names, data=[list(row) for row in zip(*columns.values())])
    titles = {"phi": "phi(t) = L(w + t g)", "phi_dd": "phi''(t), central differences",
              "mu": "strong-aiming mu(t)"}
    run.log({"landscape/table": table,
             **{f"landscape/{y}": wandb.plot.line(table, "t", y, title=title) for y, title in titles.items()}},
            step=step)
