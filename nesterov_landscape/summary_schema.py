"""summary.json, a job's record of its run, as the job writes it and the analysis reads it. It imports
nothing of the job's: the analysis, which never imports torch, uses it too.

Entries that describe the job (DESCRIPTION, with their types) sit beside what it measured: a
measurement is a number or null (strict JSON has no NaN), a word only for the entries TEXT_KEYS
names and any *_status or *precision; a mapping or a list (optimizer_hyperparams) is a record, not
a measurement. The gradient line's minima over |t| <= r end in radius_key(r) for each radius r of
the job's config key RADII_CONFIG_KEY: phi_dd_min_0p1 for r = 0.1.
"""

from typing import Any

DESCRIPTION = {
    "status": str,
    "error": str,
    "seed": int,
    "config": dict,
    "versions": dict,  # the software's versions and the CPU model (float32 magnitudes depend on both)
    "job": dict,
    "wandb": dict,
    "files": list,
}
KINDS = {str: "a word", int: "an integer", dict: "a mapping", list: "a list"}
RESULTS = ("completed", "diverged")  # the statuses of a run with a result; the job's files are then complete
# word-valued measurements besides any *_status and *precision: a new one belongs here
TEXT_KEYS = {"error", "device", "gpu", "trained_activation", "trained_products"}
RADII_CONFIG_KEY = "probe.gradient_line.radii"


def is_text_key(key: str) -> bool:
    return key in TEXT_KEYS or key.endswith(("_status", "precision"))


def radius_key(radius: float) -> str:
    """0.1 -> "0p1": summary keys without dots."""
    return f"{radius:g}".replace(".", "p")


def entry_error(key: str, value: Any) -> str | None:
    """Why `value` may not be summary entry `key` (the expected kind of value), else None."""
    if key in DESCRIPTION:
        kind = DESCRIPTION[key]
        return None if value is None or isinstance(value, kind) else f"expected {KINDS[kind]}"
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None
    if is_text_key(key) and isinstance(value, str):
        return None
    return "expected a number or null"
