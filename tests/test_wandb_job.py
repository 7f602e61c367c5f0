"""A job's W&B run id across attempts, its group name, and the credentials check, in this process."""

import json

import pytest

from nesterov_landscape.job import task, wandb_run_id
from nesterov_landscape.wandb_run import group_name, has_credentials

from .helpers import TINY, compose_job
from .wandb_offline import offline_runs


def test_a_cut_short_job_run_again_keeps_its_wandb_run_id_online_and_a_finished_one_gets_a_new_one(tmp_path):
    """Online, the same id resumes the crashed run instead of leaving it beside a new one. Offline a
    resume does nothing, and a killed attempt's W&B process may still write into a folder of that
    name: a new id, the earlier attempt's folder replaced. One run per job folder either way."""
    out = tmp_path / "job"
    (out / "history.csv").mkdir(parents=True)  # a real failure: the history file cannot be written
    with pytest.raises(OSError):
        task(compose_job([*TINY, "trainer.overwrite=true"], out))  # a folder it did not make
    failed = json.loads((out / "summary.json").read_text())
    assert failed["status"] == "failed"
    resolved = failed["config"]
    assert wandb_run_id(out, resolved, "online") == failed["wandb"]["id"]
    assert wandb_run_id(out, resolved, "offline") != failed["wandb"]["id"]
    other = {**resolved, "seed": resolved["seed"] + 1}  # another config is another run
    assert wandb_run_id(out, other, "online") != failed["wandb"]["id"]
    (out / "history.csv").rmdir()
    finished = task(compose_job(TINY, out))
    assert finished["status"] == "completed" and finished["wandb"]["id"] != failed["wandb"]["id"]
    assert [run.name.rsplit("-", 1)[1] for run in offline_runs(out)] == [finished["wandb"]["id"]]
    assert wandb_run_id(out, resolved, "online") != finished["wandb"]["id"]  # a finished result: a new one


@pytest.mark.parametrize(
    "sweep_dir,group",
    [
        ("multirun/2026-11-26/10-00-00", "multirun_2026-11-26_10-00-00"),
        ("/tmp/x_sweep", "tmp_x_sweep"),  # not _tmp_x_sweep: W&B takes names starting with "_" for its own
        ("./sweeps/../a", "sweeps_a"),
    ],
)
def test_a_sweeps_group_is_its_folder_as_given_without_a_leading_underscore(sweep_dir, group):
    assert group_name(sweep_dir) == group


def test_a_key_saved_for_wandb_ai_counts_for_wandbs_default_host(tmp_path, monkeypatch):
    """`wandb login` with wandb 0.31 saves the key for its default host or, before, for api.wandb.ai."""
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    assert not has_credentials()
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    assert has_credentials()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")  # a private server: its own key only
    assert not has_credentials()
    netrc.write_text("machine wandb.example.org\n  login user\n  password " + "k" * 40 + "\n")
    assert has_credentials()
