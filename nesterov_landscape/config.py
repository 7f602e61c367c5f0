"""Typed configuration: dataclass schemas for every config group, registered in Hydra's
ConfigStore, and `validate`, which turns a composed config into checked dataclass objects.

Hydra checks types and misspelled keys while composing; `validate` adds what it cannot: value
ranges and choices, keys slipped in with `+key=value`, and facts about the machine (CUDA).
Every failure is one line naming the key and the allowed values.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .limits import available_cores, job_size, memory_error
from .numerics.choices import ACTIVATION_NAMES, INITS, INPUT_DISTS, LABELS, LOSSES, NOISE_KINDS, PRECISIONS
from .numerics.constraints import at_least, constrained, non_negative, one_of, positive, seed_value, violation
from .numerics.optimizers import OPTIMIZERS
from .probes import PROBES


class ConfigError(ValueError):
    """A config value that is not allowed; the message names the key and the allowed values."""


@dataclass
class MLPConfig:
    name: str = one_of("mlp")
    depth: int = at_least(1)  # hidden layers; the network has depth + 1 linear maps
    width: int = at_least(1)
    activation: str = one_of(*ACTIVATION_NAMES)
    bias: bool = field()
    init: str = one_of(*INITS)


@dataclass
class TeacherConfig:
    name: str = one_of("teacher")
    n_points: int = at_least(1)
    input_dim: int = at_least(1)
    input_dist: str = one_of(*INPUT_DISTS)
    teacher_depth: int = at_least(1)
    teacher_width: int = at_least(1)
    teacher_activation: str = one_of(*ACTIVATION_NAMES)
    labels: str = one_of(*LABELS)
    label_noise: float = non_negative()
    batch_size: Optional[int] = at_least(1)  # null: full batch
    seed: Optional[int] = seed_value()  # null: derived from the top-level seed

    def config_error(self, key: str) -> str | None:
        if self.batch_size is not None and self.batch_size > self.n_points:
            return (
                f"{key}.batch_size={self.batch_size} is not allowed; it must be null or at most "
                f"{key}.n_points={self.n_points}"
            )
        return None


WANDB_PROJECT_FORBIDDEN = "/\\#?%:"


@dataclass
class WandbConfig:
    name: str = one_of("wandb")
    mode: str = one_of("offline", "online", "disabled")
    project: str = field()
    entity: Optional[str] = field()
    group: Optional[str] = field()  # null: in a multirun, the sweep folder's path with "/" replaced by "_"
    job_type: str = field()
    # W&B's own rules, which it enforces with a traceback even offline
    tags: list[str] = constrained(lambda v: all(1 <= len(t) <= 64 for t in v), "a list of tags of 1 to 64 characters")
    init_timeout: float = positive()  # seconds an online init may take before falling back to offline
    log_weights: bool = field()  # the final weights as a W&B artifact too (off: a 10,000-job sweep's worth)

    def config_error(self, key: str) -> str | None:
        bad = sorted(set(WANDB_PROJECT_FORBIDDEN) & set(self.project))
        if not 1 <= len(self.project) <= 128 or bad:
            return (
                f"{key}.project={self.project!r} is not allowed; it must be 1 to 128 characters without "
                f"any of {' '.join(WANDB_PROJECT_FORBIDDEN)}"
            )
        return None


@dataclass
class TrainerConfig:
    epochs: int = at_least(1)
    precision: str = one_of(*PRECISIONS)
    device: str = one_of("cpu", "cuda", "auto")
    log_every: int = at_least(1)
    threads: int = at_least(1)  # torch intra-op threads per job, at most the cores (checked below)
    noise: str = one_of(*NOISE_KINDS)  # noise added to each update's gradient: the full batch's or the mini-batch's
    noise_sigma: float = non_negative()
    compile: bool = field()  # torch.compile the training step (a job in its own loop: the loss); pays off for long runs
    resume: bool = field()  # skip a job whose folder already holds a finished run of the same config
    overwrite: bool = field()  # write into a folder holding files this tool did not write, or another config's result
    max_memory_gb: float = positive()  # refuse a job whose arrays are estimated above this (limits.py)
    save_weights: bool = field()  # keep the final weights in the job folder, for probes run later (reprobe)

    def config_error(self, key: str) -> str | None:
        cores = available_cores()
        if self.threads > cores:
            return (
                f"{key}.threads={self.threads} is not allowed; it must be at most {cores}, "
                "the cores this process may use (more threads only oversubscribe them)"
            )
        if (self.noise == "none") != (self.noise_sigma == 0):
            return (
                f"{key}.noise={self.noise} with {key}.noise_sigma={self.noise_sigma} is not allowed; "
                "use noise none with sigma 0, or additive/multiplicative with sigma > 0"
            )
        return None


@dataclass
class Config:
    seed: int = seed_value()
    loss: str = one_of(*LOSSES)
    model: MLPConfig = field()
    data: TeacherConfig = field()
    optimizer: Any = field()
    probe: dict[str, Any] = field()  # probe name -> its config; several may run
    logger: WandbConfig = field()
    trainer: TrainerConfig = field()


def optimizer_schema(name: str) -> type:
    """The optimizer's hyperparameter dataclass plus the `name` key that selects it. A validated
    config goes to the batched launcher's worker processes: made here, the class cannot be found by
    its name, so an instance pickles as its optimizer's name and values."""
    return dataclasses.make_dataclass(
        f"{OPTIMIZERS[name].hyperparams.__name__}Config",
        [("name", str, one_of(name))],
        bases=(OPTIMIZERS[name].hyperparams,),
        namespace={"__reduce__": lambda self: (_optimizer_config, (self.name, dataclasses.asdict(self)))},
    )


def _optimizer_config(name: str, values: dict[str, Any]) -> Any:
    return OPTIMIZER_SCHEMAS[name](**values)


OPTIMIZER_SCHEMAS = {name: optimizer_schema(name) for name in OPTIMIZERS}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    # Under schema/<group>, so they do not show up as options of the user-facing groups.
    cs.store(group="schema/model", name="mlp", node=MLPConfig)
    cs.store(group="schema/data", name="teacher", node=TeacherConfig)
    cs.store(group="schema/logger", name="wandb", node=WandbConfig)
    cs.store(group="schema/trainer", name="default", node=TrainerConfig)
    for name, probe in PROBES.items():
        cs.store(group="schema/probe", name=name, node=probe.config, package=f"probe.{name}")
    for name, schema in OPTIMIZER_SCHEMAS.items():
        cs.store(group="schema/optimizer", name=name, node=schema)


def _build(schema: type, values: Any, key: str) -> Any:
    """schema(**values), checked field by field; key is the dotted path for messages."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"{key} must be a group of keys ({', '.join(f.name for f in dataclasses.fields(schema))}), got {values!r}"
        )
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {'.'.join(filter(None, [key, unknown[0]]))}; "
            f"{key or 'the top level'} allows: {', '.join(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        path = ".".join(filter(None, [key, name]))
        if name not in values:
            raise ConfigError(f"missing key {path}")
        value = values[name]
        if dataclasses.is_dataclass(f.type):
            value = _build(f.type, value, path)
        allowed = violation(value, f)
        if allowed is not None:
            raise ConfigError(f"{path}={value!r} is not allowed; it must be {allowed}")
        kwargs[name] = value
    built = schema(**kwargs)
    # Rules that tie several fields together: a dataclass may say what breaks them, naming the keys.
    problem = built.config_error(key) if hasattr(built, "config_error") else None
    if problem:
        raise ConfigError(problem)
    return built


def _build_choice(choices: dict[str, type], values: Any, key: str) -> Any:
    name = values.get("name") if isinstance(values, dict) else None
    if name not in choices:
        raise ConfigError(f"{key}.name={name!r} is not allowed; it must be one of {', '.join(choices)}")
    return _build(choices[name], values, key)


def validate(cfg: DictConfig, cuda_available: bool) -> Config:
    """Check a composed config and return it as dataclass objects, or raise ConfigError."""
    return validate_values(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True), cuda_available)


def validate_values(values: dict[str, Any], cuda_available: bool) -> Config:
    """`validate` for a resolved config held as plain dicts and lists."""
    config = _build(Config, values, "")
    config.optimizer = _build_choice(OPTIMIZER_SCHEMAS, values["optimizer"], "optimizer")
    unknown = sorted(set(values["probe"]) - set(PROBES))
    if unknown:
        raise ConfigError(f"unknown probe {unknown[0]}; allowed: {', '.join(PROBES)} (select with probe=[a,b])")
    config.probe = {name: _build(PROBES[name].config, v, f"probe.{name}") for name, v in values["probe"].items()}
    if config.trainer.device == "cuda" and not cuda_available:
        raise ConfigError("trainer.device=cuda is not allowed: CUDA is not available on this machine; use cpu or auto")
    job = job_size(config)
    for name, probe in config.probe.items():
        problem = PROBES[name].check(probe, job)
        if problem:
            raise ConfigError(problem)
    problem = memory_error(config)  # last: it needs every value checked
    if problem:
        raise ConfigError(problem)
    return config
