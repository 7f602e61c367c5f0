"""The opening of report.md: the study's answer in words, generated from the share table. Where does
Nesterov reach the loss range, where do phi'' > 0 and mu > 0 fail, and what changes with precision."""

import pandas as pd

from nesterov_landscape.summary_schema import radius_key

from .shares import LOSS_OUTCOMES, Outcome, landscape_radius, numeric, outcome_counts, share_table
from .tables import format_value

PRECISION = "trainer.precision"
LISTED_GROUPS = 5  # name the groups when this few are all-or-nothing, else count them


def reached(runs: pd.DataFrame) -> pd.Series:
    return (runs["status"] == "completed") & (numeric(runs, "final_loss") <= 1e-9)


def percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def group_names(shares: pd.DataFrame, keys: list[str]) -> str:
    if shares.empty or len(shares) > LISTED_GROUPS:
        return ""
    names = [", ".join(f"{k}={format_value(row[k])}" for k in keys) for _, row in shares.iterrows()]
    return " (" + "; ".join(names) + ")"


def outcome_line(runs: pd.DataFrame, shares: pd.DataFrame, keys: list[str], outcome) -> str:
    """'- **label**: k of n runs (p, 95% CI lo-hi); every seed in a of g groups, no seed in b. By key: ...'"""
    total = outcome_counts(runs, outcome)
    k, n = total[f"{outcome.name}_k"], total[f"{outcome.name}_n"]
    if n == 0:
        return f"- **{outcome.label}**: no run counts (none finished, or none was probed)."
    counted = shares[shares[f"{outcome.name}_n"] > 0]
    everywhere = counted[counted[f"{outcome.name}_k"] == counted[f"{outcome.name}_n"]]
    nowhere = counted[counted[f"{outcome.name}_k"] == 0]
    text = (
        f"- **{outcome.label}**: {k} of {n} runs ({percent(k / n)}, 95% CI "
        f"{percent(total[f'{outcome.name}_lo'])} to {percent(total[f'{outcome.name}_hi'])})"
    )
    if keys:
        text += (
            f"; every seed in {len(everywhere)} of {len(counted)} groups{group_names(everywhere, keys)}, "
            f"no seed in {len(nowhere)}{group_names(nowhere, keys)}"
        )
    text += "."
    if outcome not in LOSS_OUTCOMES:
        # Far from a minimizer mu(t) ~ -2 phi(0) / t^2 is negative whatever the landscape: the runs at
        # a minimizer answer "near the minimizer".
        near = outcome_counts(runs[reached(runs)], outcome)
        text += f" Among the runs reaching 1e-9: {near[f'{outcome.name}_k']}/{near[f'{outcome.name}_n']}."
    for key in keys:
        marginal = share_table(runs, [key], (outcome,))
        parts = [
            f"{format_value(row[key])}: {int(row[f'{outcome.name}_k'])}/{int(row[f'{outcome.name}_n'])}"
            for _, row in marginal.iterrows()
            if row[f"{outcome.name}_n"] > 0
        ]
        text += f" By {key}: {', '.join(parts)}."
    return text


def precision_pairs(runs: pd.DataFrame, pair_keys: list[str], radius: float) -> pd.DataFrame:
    """Runs that differ only in the training precision, one row per pair with both reaching 1e-9:
    phi''(0) and the minima of phi'' and mu over |t| <= radius, in float32 and in float64."""
    at_minimum = runs[reached(runs)]
    identity = pd.Series(
        ["|".join(map(str, row)) for row in at_minimum[pair_keys].itertuples(index=False)],
        index=at_minimum.index,
        dtype=object,
    )
    columns = ["phi_dd_at_0", f"phi_dd_min_{radius_key(radius)}", f"mu_min_{radius_key(radius)}"]
    sides = [
        pd.DataFrame({c: numeric(at_minimum, c) for c in columns}).assign(identity=identity)[at_minimum[PRECISION] == p]
        for p in ("float32", "float64")
    ]
    return sides[0].merge(sides[1], on="identity", suffixes=("_32", "_64")).dropna()


def precision_line(runs: pd.DataFrame, keys: list[str], pair_keys: list[str], outcomes: tuple[Outcome, ...]) -> str:
    if PRECISION not in keys:
        values = ", ".join(sorted(runs[PRECISION].dropna().astype(str).unique())) if PRECISION in runs else "unknown"
        return (
            f"- **Precision**: not swept (training precision: {values}). The curvature along the gradient "
            f"at the end of training can change by orders of magnitude with it; sweep `{PRECISION}=float32,float64`."
        )
    per_precision = share_table(runs, [PRECISION], outcomes).set_index(PRECISION)
    values = list(per_precision.index)
    text = f"- **Precision** ({' vs '.join(map(str, values))}): " + "; ".join(
        f"{o.label} in " + " vs ".join(percent(per_precision.at[v, o.name]) for v in values) + " of runs"
        for o in outcomes
    )
    at_minimum = runs[reached(runs)]
    medians = [numeric(at_minimum[at_minimum[PRECISION] == v], "phi_dd_at_0").median() for v in values]
    text += ". Median phi''(0) of the runs reaching 1e-9: " + " vs ".join(format_value(m) for m in medians) + "."
    radius = landscape_radius(runs)
    if {"float32", "float64"} <= set(values) and radius is not None:
        pairs = precision_pairs(runs, pair_keys, radius)
        phi_dd, mu = f"phi_dd_min_{radius_key(radius)}", f"mu_min_{radius_key(radius)}"
        if len(pairs):
            ratio = (pairs["phi_dd_at_0_32"] / pairs["phi_dd_at_0_64"]).abs()
            same_phi = ((pairs[f"{phi_dd}_32"] > 0) == (pairs[f"{phi_dd}_64"] > 0)).sum()
            same_mu = ((pairs[f"{mu}_32"] > 0) == (pairs[f"{mu}_64"] > 0)).sum()
            text += (
                f" In the {len(pairs)} pairs of runs that differ only in precision and both reach 1e-9, "
                f"|phi''(0)| in float32 is {format_value(ratio.median())} times that in float64 (median; "
                f"{format_value(ratio.min())} to {format_value(ratio.max())}); the sign of phi'' on "
                f"|t| <= {radius:g} agrees in {same_phi} and that of mu in {same_mu} of them."
            )
        else:
            text += " No pair of runs differing only in precision reaches 1e-9 in both."
    return text


def answer_markdown(
    runs: pd.DataFrame, keys: list[str], shares: pd.DataFrame, pair_keys: list[str], outcomes: tuple[Outcome, ...]
) -> str:
    """The answer section: counts, one line per outcome, one on precision. `runs` without duplicates,
    `shares` the share table of `keys` and `outcomes`, `pair_keys` the config keys that identify a
    run but for precision."""
    seeds = shares["runs"]
    per_group = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()} to {seeds.max()}"
    lines = [
        "## The answer",
        "",
        f"{len(runs)} runs in {len(shares)} groups ({' x '.join(f'`{k}`' for k in keys) or 'one group'}), "
        f"{per_group} runs per group. Shares are over runs with a result (a diverged run has not reached "
        "the loss; failed, interrupted and missing runs are left out); the landscape shares are over "
        "completed, probed runs.",
        "",
        *(outcome_line(runs, shares, keys, o) for o in outcomes),
        precision_line(runs, keys, pair_keys, outcomes),
        "",
    ]
    return "\n".join(lines) + "\n"
