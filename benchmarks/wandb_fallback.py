"""How long a job's W&B start takes when `logger.mode=online` cannot reach W&B, against an offline start:
without credentials (the job must not reach wandb's account prompt, nor the server) and with a key but an
unreachable server (the start must be bounded by `logger.init_timeout`). The wall-clock times moved here
from tests/test_e2e.py, which checks the behaviour (the fallback and its reason) but not the seconds.

Run: .venv/bin/python benchmarks/wandb_fallback.py [--out benchmarks/wandb_fallback.md]"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from nesterov_landscape.wandb_run import start_run

# a key, and a server on this machine that refuses connections (set before wandb's first start, which reads it)
UNREACHABLE_URL = "http://127.0.0.1:9"
KEY = {"WANDB_API_KEY": "x" * 40}


def timed_start(mode: str, init_timeout: float, env: dict[str, str]) -> tuple[float, str]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run, used = start_run(mode, init_timeout, dir=tmp, project="bench", config={})
            seconds = time.perf_counter() - start
            run.finish()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return seconds, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        # no credentials of the user's, no settings: the same isolation as the tests
        os.environ.update(WANDB_CONFIG_DIR=home, NETRC=str(Path(home) / "no-netrc"), WANDB_SILENT="true")
        os.environ["WANDB_BASE_URL"] = UNREACHABLE_URL
        os.environ.pop("WANDB_API_KEY", None)
        timed_start("offline", 30, {})  # the first start in a process also starts wandb-core: not timed
        cases = [
            ("offline (baseline)", "offline", 30, {}),
            ("online, no credentials", "online", 30, {}),
            ("online, unreachable server, init_timeout 2", "online", 2, KEY),
            ("online, unreachable server, init_timeout 5", "online", 5, KEY),
        ]
        rows = []
        for label, mode, init_timeout, env in cases:
            seconds, used = timed_start(mode, init_timeout, env)
            rows.append(f"| {label} | {init_timeout:g} | {used} | {seconds:.2f} |")
            print(rows[-1], flush=True)
    table = "\n".join(["| W&B start | init_timeout (s) | mode used | seconds |", "|---|---|---|---|", *rows])
    if args.out:
        args.out.write_text(f"# W&B start when online fails ({time.strftime('%Y-%m-%d')})\n\n{table}\n")


if __name__ == "__main__":
    main()
