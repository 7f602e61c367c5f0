"""Dataclass fields that carry the rule their value must satisfy.

The config dataclasses declare their limits here, next to the field, so one generic check
(`config.validate`) can name the key and the allowed values when a user gives a bad one.
Fields have no default: the YAML files in conf/ are the single source of defaults.
"""

import dataclasses
import math
from typing import Any, Callable


def constrained(check: Callable[[Any], bool], allowed: str, **field_kwargs) -> Any:
    return dataclasses.field(metadata={"check": check, "allowed": allowed}, **field_kwargs)


def positive() -> Any:
    return constrained(lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative() -> Any:
    return constrained(lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def finite() -> Any:
    return constrained(lambda v: math.isfinite(v), "a finite number")


# numpy's SeedSequence needs seeds >= 0, torch.Generator.manual_seed at most 2^64 - 1
SEED_MAX = 2**63 - 1


def seed_value() -> Any:
    return constrained(lambda v: 0 <= v <= SEED_MAX, f"an integer in [0, {SEED_MAX}] (2^63 - 1)")


def at_least(low: int) -> Any:
    return constrained(lambda v: v >= low, f"an integer >= {low}")


def unit_interval() -> Any:
    """[0, 1): momentum-like coefficients."""
    return constrained(lambda v: 0 <= v < 1, "a number in [0, 1)")


def one_of(*choices: str, **field_kwargs) -> Any:
    return constrained(lambda v: v in choices, "one of " + ", ".join(choices), **field_kwargs)


def violation(value: Any, f: dataclasses.Field) -> str | None:
    """The allowed values of field f if `value` breaks its rule, else None."""
    check = f.metadata.get("check")
    if check is None or value is None or check(value):
        return None
    return f.metadata["allowed"]
