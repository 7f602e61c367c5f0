"""The batched launchers are Hydra launchers for any app: Hydra's own launcher conformance suites
(the ones Hydra's joblib and submitit plugins run) pass with another app's task function, whose
jobs go through Hydra's run_job. In the launching process, in worker processes (n_jobs null: one
per core, at most one per job), and in SLURM array tasks through submitit's local executor."""

import pytest
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from hydra.version import _UNSPECIFIED_, VersionBase  # Hydra's own marker for "no version_base given"

LAUNCHERS = [
    pytest.param("batched", ["hydra.launcher.n_jobs=1"], id="in-process"),
    pytest.param("batched", [], id="workers"),
    # one array task runs a sweep's jobs one after another (runs_per_task: 1000); it takes 2 to 4 s to start
    pytest.param("batched_slurm", ["hydra.launcher.cluster=local"], id="slurm"),
]


@pytest.fixture(autouse=True)
def no_version_base():
    """The suites run their apps without a version_base (so jobs chdir into their folders, and the
    suites look for the log there). Hydra keeps the version_base in a process-wide singleton, which
    the app's in-process tests set to 1.3: unset it for each case, and restore it after."""
    saved = VersionBase.instance().getbase()
    VersionBase.instance().version_base = _UNSPECIFIED_
    yield
    VersionBase.instance().version_base = saved


@pytest.mark.parametrize("launcher_name, overrides", LAUNCHERS)
class TestBatchedLaunchers(LauncherTestSuite):
    pass


@pytest.mark.slow  # each case starts a Python process, and a submitit task on top for SLURM
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        pytest.param({}, ["-m", "hydra/launcher=batched"], id="batched"),
        pytest.param({}, ["-m", "hydra/launcher=batched_slurm", "hydra.launcher.cluster=local"], id="slurm"),
    ],
)
class TestBatchedLaunchersIntegration(IntegrationTestSuite):
    pass
