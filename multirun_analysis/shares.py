"""The study's question, per group: the share of seeds that reach the loss range, and the share whose
landscape at the trained weights is convex along the gradient and strongly aiming, each with its 95%
Wilson interval."""

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from nesterov_landscape.summary_schema import RESULTS, radius_key

from .load import listed_radii
from .stats import wilson_interval
from .tables import format_value, markdown_table, sort_by_keys

PUBLISHED_RANGE = (1e-12, 1e-9)  # Figure 3's final training losses


def numeric(runs: pd.DataFrame, column: str) -> pd.Series:
    """A metric as floats; all NaN when no run has it (e.g. a sweep without the probe)."""
    if column not in runs:
        return pd.Series(float("nan"), index=runs.index)
    return pd.to_numeric(runs[column], errors="coerce")


def finished(runs: pd.DataFrame) -> pd.Series:
    """Runs with a result: a diverged run counts as not reaching any loss; failed, interrupted and
    missing runs have no result and are left out of the denominator."""
    return runs["status"].isin(RESULTS)


def probed(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda runs: (runs["status"] == "completed") & numeric(runs, column).notna()


def final_loss_within(low: float, high: float) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda runs: (runs["status"] == "completed") & numeric(runs, "final_loss").between(low, high)


@dataclass(frozen=True)
class Outcome:
    name: str  # column prefix in shares.csv
    label: str  # for tables, figures and the report
    counted: Callable[[pd.DataFrame], pd.Series]  # the runs that count (the denominator)
    success: Callable[[pd.DataFrame], pd.Series]  # which of them succeed


LOSS_OUTCOMES = (
    Outcome("loss_le_1e-9", "final loss <= 1e-9", finished, final_loss_within(0.0, 1e-9)),
    Outcome("loss_in_published", "final loss in [1e-12, 1e-9]", finished, final_loss_within(*PUBLISHED_RANGE)),
)


def landscape_outcomes(radius: float) -> tuple[Outcome, ...]:
    """phi'' > 0 and mu > 0 on |t| <= radius, from the gradient line's minima over it."""
    phi_dd, mu = f"phi_dd_min_{radius_key(radius)}", f"mu_min_{radius_key(radius)}"
    return (
        Outcome(
            f"phi_dd_pos_{radius_key(radius)}",
            f"phi'' > 0 on |t| <= {radius:g}",
            probed(phi_dd),
            lambda runs: numeric(runs, phi_dd) > 0,
        ),
        Outcome(
            f"mu_pos_{radius_key(radius)}",
            f"mu > 0 on mu_cutoff <= |t| <= {radius:g}",
            probed(mu),
            lambda runs: numeric(runs, mu) > 0,
        ),
    )


def landscape_radius(runs: pd.DataFrame) -> float | None:
    """The radius of the landscape shares, from the jobs' configs (their gradient line's radii): the
    one most runs list, the smallest of those; None when no run probes the gradient line."""
    counts = listed_radii(runs)
    return min(counts, key=lambda r: (-counts[r], r)) if counts else None


def outcomes_of(runs: pd.DataFrame) -> tuple[Outcome, ...]:
    """The loss outcomes, then the landscape outcomes at landscape_radius(runs), if any."""
    radius = landscape_radius(runs)
    return LOSS_OUTCOMES + (landscape_outcomes(radius) if radius is not None else ())


def outcome_counts(runs: pd.DataFrame, outcome: Outcome) -> dict[str, float]:
    """successes k, trials n, the share k/n and its 95% Wilson interval, as the columns of shares.csv."""
    counted = outcome.counted(runs)
    k, n = int((counted & outcome.success(runs)).sum()), int(counted.sum())
    low, high = wilson_interval(k, n)
    return {
        f"{outcome.name}_k": k,
        f"{outcome.name}_n": n,
        outcome.name: k / n if n else float("nan"),
        f"{outcome.name}_lo": low,
        f"{outcome.name}_hi": high,
    }


def share_table(runs: pd.DataFrame, keys: list[str], outcomes: tuple[Outcome, ...]) -> pd.DataFrame:
    """One row per group (every combination of `keys`, ordered numerically), the seeds counted in
    `runs`, then each outcome's k, n, share, lo, hi. Pass the runs without duplicates."""
    grouped = runs.groupby(keys, dropna=False, sort=False) if keys else [((), runs)]
    rows = []
    for values, group in grouped:
        values = values if isinstance(values, tuple) else (values,)
        row = {**dict(zip(keys, values)), "runs": len(group)}
        for outcome in outcomes:
            row |= outcome_counts(group, outcome)
        rows.append(row)
    return sort_by_keys(pd.DataFrame(rows), keys).reset_index(drop=True)


def share_cell(row: pd.Series, name: str) -> str:
    """'2/3 = 0.67 [0.21, 0.94]': successes of trials, the share and its 95% Wilson interval."""
    n = int(row[f"{name}_n"])
    if n == 0:
        return "-"
    return f"{int(row[f'{name}_k'])}/{n} = {row[name]:.2f} [{row[f'{name}_lo']:.2f}, {row[f'{name}_hi']:.2f}]"


def shares_markdown(shares: pd.DataFrame, keys: list[str], outcomes: tuple[Outcome, ...]) -> str:
    """The share table for people: one column per outcome, each cell k/n = share [95% interval]."""
    header = [*keys, "runs", *(o.label for o in outcomes)]
    rows = [
        [*(format_value(row[k]) for k in keys), str(int(row["runs"])), *(share_cell(row, o.name) for o in outcomes)]
        for _, row in shares.iterrows()
    ]
    return markdown_table(header, rows)
