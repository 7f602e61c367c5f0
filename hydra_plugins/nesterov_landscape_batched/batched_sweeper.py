"""`hydra/sweeper=batched` (the app's default): Hydra's basic sweeper, except that before a batch it
lets a launcher that composes jobs itself check them. Hydra's own check composes every job's
config (about 0.25 s each, and again in the launcher); the batched launchers compose once per set of
group choices and apply each distinct value once, so a bad value still fails before any job runs."""

from dataclasses import dataclass
from typing import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore


@dataclass
class BatchedSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.nesterov_landscape_batched.batched_sweeper.BatchedSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="batched", node=BatchedSweeperConf, provider="nesterov_landscape"
)


class BatchedSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if getattr(self.launcher, "composes_jobs", False):
            self.launcher.check_batch(batch)
        else:
            super().validate_batch_is_legal(batch)
