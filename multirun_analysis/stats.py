"""Confidence intervals for a share of seeds."""

import math

# the standard normal's 97.5% quantile: a two-sided 95% interval
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (Wilson 1927; Newcombe 1998, method 3).

    Chosen over the textbook p +- z sqrt(p(1-p)/n) because a study has few seeds per group and
    shares near 0 or 1: there the normal approximation collapses to a zero-width interval (3 of 3
    seeds gives [1, 1]); Wilson's stays inside [0, 1] and keeps its coverage. (nan, nan) for no trials."""
    if trials == 0:
        return math.nan, math.nan
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, trials], got {successes} of {trials}")
    p = successes / trials
    denominator = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denominator
    half_width = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    # At 0 or n successes one end is exactly 0 or 1; clamp the rounding of center -+ half_width there.
    return max(0.0, center - half_width), min(1.0, center + half_width)
