"""The Polyak-Lojasiewicz ratio |grad L|^2 / (2 (L - inf L)) along training: a history column,
pl_ratio, logged with the loss at every history row; the summary's final_pl_ratio is the last."""

import math
from dataclasses import dataclass

from ..numerics.constraints import constrained
from . import register


@dataclass
class PLConfig:
    inf_loss: float = constrained(lambda v: math.isfinite(v), "a finite number")


def pl_ratio(loss: float, grad_norm: float, inf_loss: float) -> float:
    """Bounded below by mu wherever L satisfies a mu-PL inequality; NaN where L <= inf L."""
    gap = loss - inf_loss
    return grad_norm**2 / (2 * gap) if gap > 0 else math.nan


def history(config: PLConfig, row: dict[str, float]) -> dict[str, float]:
    return {"pl_ratio": pl_ratio(row["loss"], row["grad_norm"], config.inf_loss)}


register("pl", PLConfig, history=history)
