"""A re-probe's overrides, written as on the job's command line (`probe=[gradient_line,hessian]
probe.gradient_line.precision=float64`), checked by Hydra against conf/ once and then applied to
each finished job's stored config."""

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from ..probes import PROBES

CONF = Path(__file__).resolve().parents[2] / "conf"
# What a re-probe may change: the probes, and settings that leave the trained weights as they are.
ALLOWED = (
    "probe",
    "logger",
    "trainer.device",
    "trainer.threads",
    "trainer.max_memory_gb",
    "trainer.resume",
    "trainer.overwrite",
)
NAME = re.compile(r"[\w.+=,-]{1,100}")


class OverrideError(ValueError):
    """Overrides that cannot apply; the message is one line naming the override or key."""


@dataclass(frozen=True)
class Overrides:
    lines: tuple[str, ...]
    selection: tuple[str, ...] | None  # probe=[...]; None: each job's own probes
    defaults: dict[str, Any]  # conf/probe's settings of each selected probe
    values: dict[str, Any]  # dotted key -> its value, as Hydra composed it

    def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        """A job's resolved config with the overrides: a selected probe that the job ran keeps the
        job's settings, another takes conf/probe's; then each key=value is set."""
        config = copy.deepcopy(config)
        if self.selection is not None:
            own = config.get("probe") or {}
            config["probe"] = {name: own.get(name, self.defaults[name]) for name in self.selection}
        for key, value in self.values.items():
            *parents, last = key.split(".")
            node: Any = config
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict) or last not in node:
                raise OverrideError(_not_in(key, config))
            node[last] = copy.deepcopy(value)
        return config


def _not_in(key: str, config: dict[str, Any]) -> str:
    parts = key.split(".")
    if parts[0] == "probe" and parts[1] not in (config.get("probe") or {}):
        selected = ", ".join(config.get("probe") or {}) or "none"
        return f"{key} sets the probe {parts[1]}, which is not selected (selected: {selected}); add probe=[...]"
    return f"{key} is not a key of the job's config"


def parse(lines: list[str]) -> Overrides:
    """The overrides checked by Hydra against conf/ (types, keys, probe names); OverrideError."""
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException as error:
        raise OverrideError(_first_line(error)) from None
    for override in parsed:
        key = override.key_or_group
        if override.is_sweep_override():
            raise OverrideError(f"{override.input_line}: a re-probe takes one value per key, not a sweep")
        if override.is_add() or override.is_delete() or override.is_force_add():
            raise OverrideError(f"{override.input_line}: a re-probe sets keys the config has (no + or ~)")
        if not any(key == a or key.startswith(f"{a}.") for a in ALLOWED):
            raise OverrideError(
                f"{override.input_line} is not allowed: a re-probe sets {', '.join(ALLOWED)} (and keys under "
                "probe and logger); other keys would change the trained weights: train anew instead"
            )
    keys = [o.key_or_group for o in parsed]
    named = dict.fromkeys(key.split(".")[1] for key in keys if key.startswith("probe."))
    selected = next((o.value() for o in parsed if o.key_or_group == "probe"), None)
    chosen = selected if isinstance(selected, list) else [] if selected in (None, "none") else [selected]
    for name in [*named, *chosen]:
        if name not in PROBES:
            raise OverrideError(f"unknown probe {name}; allowed: {', '.join(PROBES)} (select with probe=[a,b])")
    checked = list(lines)
    if selected is None and named:  # each job keeps its own probes; those the keys name are checked against conf/
        checked.append(f"probe=[{','.join(named)}]")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            composed = compose("config", overrides=checked)
    except HydraException as error:
        raise OverrideError(_first_line(error)) from None
    finally:
        GlobalHydra.instance().clear()
    probes = {} if OmegaConf.is_missing(composed, "probe") else _plain(composed.probe)  # probe=[]: none
    return Overrides(
        lines=tuple(lines),
        selection=None if selected is None else tuple(probes),
        defaults=probes,
        values={key: _plain(OmegaConf.select(composed, key)) for key in keys if key != "probe"},
    )


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _first_line(error: BaseException) -> str:
    """Hydra's message in one line: its first, with the options of a missing choice (probe=[nope])
    or the first line of its cause (OmegaConf's reason)."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    cause = str(error.__cause__).strip().splitlines() if error.__cause__ else []
    if getattr(error, "options", None):
        return f"{first} allowed: {', '.join(error.options)}"
    return f"{first} ({cause[0]})" if cause else first


def default_name(lines: list[str]) -> str:
    """The re-probe's folder name when --name is not given: its overrides without `probe.`, a
    selection as `a+b` (`own` with none): probe=[hessian] probe.hessian.top_k=10 -> hessian,hessian.top_k=10."""
    parts = []
    for line in lines:
        key, _, value = line.partition("=")
        if key.startswith("logger."):  # no change to the numbers: the same re-probe
            continue
        selection = value.strip("[]").replace(",", "+") or "none"
        parts.append(selection if key == "probe" else f"{key.removeprefix('probe.')}={value}")
    return ",".join(parts) or "own"


def name_error(name: str) -> str | None:
    if NAME.fullmatch(name) and name not in (".", ".."):
        return None
    return (
        f"--name {name!r} is not allowed: a re-probe's folder name is 1 to 100 letters, digits and . + = , _ -"
        " (give --name when the overrides make no such name)"
    )
