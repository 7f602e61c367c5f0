"""`python -m nesterov_landscape [overrides] [--multirun]`: one job, or a sweep with --multirun."""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .config import ConfigError, register_configs
from .train import train

log = logging.getLogger("nesterov_landscape")
register_configs()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except ConfigError as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("invalid config: %s", error)
            raise
        # One line and a non-zero exit instead of Hydra's traceback for a single job.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
