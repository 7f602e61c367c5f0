"""The fault suite's figures. A fault case names what it guards with @pytest.mark.guards(...): jobs
lost (a result gone or a finished job not finished), mixed (two attempts' or two jobs' files in one
folder), duplicated (a job run or logged twice), foreign files deleted (anything the tool did not
write, removed or changed). At the end pytest prints, per guard, the cases that check it and how many
of them failed: a guard's figure is its failed cases, so "lost 0" is earned by passing cases."""

import logging
import signal

import pytest

GUARDS = ("lost", "mixed", "duplicated", "foreign files deleted")


@pytest.fixture(autouse=True)
def _isolated_wandb(tmp_path, monkeypatch):
    """No test reads the user's W&B credentials or settings."""
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


@pytest.fixture(autouse=True)
def _root_logger_restored():
    """Hydra's in-process launches (its launcher conformance suites) configure the root logger with
    their console and file handlers and leave them: every later in-process job would log to the
    terminal through them too. Each test ends with the root logger's handlers and level as it began."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def pytest_configure(config):
    # A shell's background job (`make test &`, nohup) starts with SIGINT ignored, and an ignored
    # signal stays ignored in every child: the Ctrl-C cases' jobs would then finish as if never
    # interrupted. Handled (not ignored) here, SIGINT is the default again in each child after exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line("markers", f"guards(*kinds): what a fault case checks, of: {', '.join(GUARDS)}")
    # The commands the tests start take Ctrl-C as a terminal's commands do. A shell without job
    # control starts a background job (`make test &` in a script) with SIGINT ignored; every child
    # inherits that and Python keeps it (no KeyboardInterrupt), so the Ctrl-C cases would see a job
    # run to its end (exit 0) and a sweep of one worker train on. A handler, unlike SIG_IGN, is not
    # inherited: the children start with SIGINT's default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    marker = item.get_closest_marker("guards")
    if marker is not None:
        unknown = set(marker.args) - set(GUARDS)
        assert not unknown, f"{item.nodeid}: unknown guards {unknown}; allowed: {GUARDS}"
        outcome.get_result().user_properties.append(("guards", marker.args))


def pytest_terminal_summary(terminalreporter):
    cases: dict[str, bool] = {}  # nodeid -> passed, over setup, call and teardown
    guarded: dict[str, tuple[str, ...]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            kinds = dict(getattr(report, "user_properties", [])).get("guards")
            if kinds is None or not hasattr(report, "nodeid"):
                continue
            guarded[report.nodeid] = kinds
            cases[report.nodeid] = cases.get(report.nodeid, True) and not report.failed
    if not cases:
        return
    figures = []
    for guard in GUARDS:
        checking = [nodeid for nodeid, kinds in guarded.items() if guard in kinds]
        failed = sum(not cases[nodeid] for nodeid in checking)
        figures.append(f"{guard} {failed} (in {len(checking)} cases)")
    broken = sum(not passed for passed in cases.values())
    terminalreporter.write_line(f"fault suite: {len(cases)} cases, {broken} failed; " + ", ".join(figures))
