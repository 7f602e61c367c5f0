"""`hydra/launcher=batched`: the same --multirun, with the jobs that differ only in shape-keeping
values (seeds, lr, momentum, ...) trained together as one stacked computation. Every job still
runs through Hydra's run_job and the harness's train(cfg): its own folder, .hydra/, files and W&B run."""

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.nesterov_landscape_batched.batched_launcher.BatchedLauncher"
    max_batch: int = 1000  # runs per stacked computation


ConfigStore.instance().store(
    group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="nesterov_landscape"
)


class BatchedLauncher(Launcher):
    def __init__(self, max_batch: int = 1000) -> None:
        super().__init__()
        self.max_batch = max_batch
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from nesterov_landscape.batched import stack_signature, train_together
        from nesterov_landscape.config import ConfigError, validate
        from nesterov_landscape.train import finished_summary, train

        setup_globals()
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            jobs.append((idx, overrides, sweep_config))
        groups: dict[str, list[int]] = defaultdict(list)
        validated = {}
        for position, (idx, _, sweep_config) in enumerate(jobs):
            task_config = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
            try:
                config = validate(task_config, cuda_available=torch.cuda.is_available())
            except ConfigError:
                continue  # runs alone, where the job reports it
            output_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
            resolved = OmegaConf.to_container(task_config, resolve=True)
            signature = stack_signature(config)
            if signature is not None and not (config.trainer.resume and finished_summary(output_dir, resolved)):
                groups[signature].append(position)
                validated[position] = config
        stacks = [
            members[i : i + self.max_batch]
            for members in groups.values()
            for i in range(0, len(members), self.max_batch)
            if len(members[i : i + self.max_batch]) > 1
        ]
        stacked = {position for stack in stacks for position in stack}
        log.info(f"Launching {len(jobs)} jobs: {len(stacked)} in {len(stacks)} stacked computations")

        def run(position: int, trained=None) -> JobReturn:
            idx, overrides, sweep_config = jobs[position]
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            task = self.task_function if trained is None else functools.partial(train, trained=trained)
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=task,
                config=sweep_config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            return ret

        runs: list[JobReturn] = []
        for stack in stacks:
            log.info(f"Training jobs {', '.join(str(jobs[p][0]) for p in stack)} stacked")
            results = train_together([validated[p] for p in stack])
            runs += [run(position, trained) for position, trained in zip(stack, results)]
        runs += [run(position) for position in range(len(jobs)) if position not in stacked]
        runs.sort(key=lambda r: int(r.hydra_cfg.hydra.job.num))
        return runs
