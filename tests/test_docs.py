"""The documentation against the repository: every relative link and anchor resolves and none leaves
the repository; the config reference (docs/config.md) lists exactly the keys Hydra composes; the
summary.json table (docs/outputs.md) lists exactly the keys a job writes."""

import json
import re
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from nesterov_landscape.job import task

from .helpers import CONF, ROOT, TINY, compose_config, compose_job

PAGES = sorted([ROOT / "README.md", ROOT / "benchmarks" / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\n]|\\\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)
ADDRESS = re.compile(r"\b[a-z][a-z0-9+.-]*://|\bmailto:|\bwww\.", re.I)
# Reports multirun_analysis wrote, kept as written: they link to their analysis folder's other files,
# of which the snapshot keeps a few.
WRITTEN_BY_THE_ANALYSIS = {ROOT / "docs" / "results" / "phase" / "report.md"}


def prose(text: str) -> str:
    """The text outside fenced code blocks (commands there are not links)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lowercased, punctuation other than - and _
    dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, a repeated one numbered -1, -2, ... as GitHub does."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(prose(page.read_text())):
        base = slug(heading)
        out.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return out


def test_the_slug_rule_on_headings_of_these_docs():
    assert slug("Launchers (`hydra/launcher=...`)") == "launchers-hydralauncher"
    assert slug("One job, one folder, one W&B run") == "one-job-one-folder-one-wb-run"
    assert slug("Probes (`probe=[gradient_line]`)") == "probes-probegradient_line"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve_inside_the_repository(page):
    text = prose(page.read_text())
    problems = [f"an address outside the repository: {m.group(0)}" for m in ADDRESS.finditer(text)]
    for target in LINK.findall(CODE_SPAN.sub("", text)):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif not linked.exists() and page not in WRITTEN_BY_THE_ANALYSIS:
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: no heading with anchor #{anchor} in {linked.relative_to(ROOT)}")
    assert not problems, "\n".join(problems)


def table_rows(text: str, first_header: str) -> list[list[str]]:
    """The cells of every table row under a header whose first cell is `first_header`."""
    rows, inside = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            inside = False
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not inside:
            inside = cells[0] == first_header
        elif not set(cells[0]) <= set("-: "):
            rows.append(cells)
    return rows


def documented_keys(cell: str, separator: str) -> list[str]:
    """The keys a table cell names: `a.b.c`, `.d` stands for `a.b.d` (with separator "."), as
    `x_min`, `_max` stands for `x_max` (with "_")."""
    keys: list[str] = []
    for token in re.findall(r"`([^`]+)`", cell):
        if token.startswith(separator):
            token = keys[-1].rsplit(separator, 1)[0] + token
        keys.append(token)
    return keys


def leaf_keys(node, prefix: str = "") -> set[str]:
    if isinstance(node, dict) and node:
        return {key for name, value in node.items() for key in leaf_keys(value, f"{prefix}{name}.")}
    return {prefix[:-1]}


def container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=False)


GROUPS = ("model", "data", "optimizer", "logger", "trainer", "experiment")
EVERY_PROBE = "probe=[gradient_line,random_line,hessian,pl]"
LAUNCHERS = ("batched", "batched_slurm", "slurm", "joblib")
OUR_LAUNCHERS = ("batched", "batched_slurm")  # every key of these is documented


def test_the_config_reference_lists_exactly_the_composed_keys():
    text = (ROOT / "docs" / "config.md").read_text()
    options = {g: sorted(p.stem for p in (CONF / g).glob("*.yaml")) for g in GROUPS}
    composed = set()
    for overrides in [[EVERY_PROBE], *([f"{g}={o}"] for g, names in options.items() for o in names)]:
        config = container(compose_config(overrides))
        composed |= leaf_keys(config)
    documented = {key for row in table_rows(text, "key") for key in documented_keys(row[0], ".")}
    launcher_keys = {key for key in documented if key.startswith("hydra.launcher.")}
    assert sorted(composed - documented) == [], "keys missing from docs/config.md"
    assert sorted(documented - composed - launcher_keys) == [], "documented keys that no config has"
    for group, names in {**options, "probe": [p.stem for p in (CONF / "probe").glob("*.yaml")]}.items():
        for option in names:
            assert f"`{option}`" in text or f"{group}={option}" in text, f"option {group}={option} undocumented"


def test_the_launcher_keys_are_documented_for_the_launchers_that_have_them():
    rows = table_rows((ROOT / "docs" / "config.md").read_text(), "key")
    by_launcher: dict[str, set[str]] = {name: set() for name in LAUNCHERS}
    for row in rows:
        if row[0].startswith("`hydra.launcher."):
            for name in re.split(r",\s*", row[2]):
                assert name in by_launcher, f"{row[0]}: unknown launcher {name!r}"
                by_launcher[name] |= set(documented_keys(row[0], "."))
    for name in LAUNCHERS:
        launcher = container(compose_config([f"hydra/launcher={name}"], hydra=True)["hydra"]["launcher"])
        keys = {f"hydra.launcher.{key}" for key in launcher if not key.startswith("_")}
        assert sorted(by_launcher[name] - keys) == [], f"documented for {name} but not its keys"
        if name in OUR_LAUNCHERS:
            assert sorted(keys - by_launcher[name]) == [], f"keys of {name} missing from docs/config.md"
    ours = OmegaConf.load(CONF / "hydra" / "launcher" / "slurm.yaml")
    set_here = {f"hydra.launcher.{key}" for key in ours if key != "defaults"}
    assert sorted(set_here - by_launcher["slurm"]) == [], "keys conf/hydra/launcher/slurm.yaml sets, undocumented"


RADII = {0.1: "0p1", 0.25: "0p25", 1.0: "1"}  # docs/outputs.md's notation, written out by hand
TOP_K = 5
NESTED = ("job", "wandb")  # summary.json objects whose keys are documented one by one
ONLY_WHEN_FAILED = {"error"}  # written only by a failed or interrupted job (tests/test_job.py has one)


def test_the_summary_table_lists_exactly_the_keys_a_job_with_every_probe_writes(tmp_path):
    out = tmp_path / "job"
    radii = ",".join(str(r) for r in RADII)
    overrides = [*TINY, EVERY_PROBE, f"probe.gradient_line.radii=[{radii}]", f"probe.hessian.top_k={TOP_K}"]
    overrides += ["probe.hessian.lanczos_steps=8", "probe.hessian.trace_samples=2", "probe.random_line.directions=2"]
    task(compose_job(overrides, out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    written = {f"{k}.{sub}" for k in NESTED for sub in summary[k]} | (summary.keys() - set(NESTED))

    text = (ROOT / "docs" / "outputs.md").read_text()
    section = text[text.index("## summary.json") :]
    documented = set()
    for row in table_rows(section, "key"):
        for key in documented_keys(row[0], "_"):
            if "<r>" in key:
                documented |= {key.replace("<r>", suffix) for suffix in RADII.values()}
            elif "<i>" in key:
                documented |= {key.replace("<i>", str(i)) for i in range(1, TOP_K + 1)}
            else:
                documented.add(key)
    assert ONLY_WHEN_FAILED <= documented
    assert sorted(written - documented) == [], "summary.json keys missing from docs/outputs.md"
    assert sorted(documented - ONLY_WHEN_FAILED - written) == [], "documented keys the job did not write"
