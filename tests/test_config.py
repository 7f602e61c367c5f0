"""Composition of every config option and preset, and the one-line errors for bad values."""

import pickle

import pytest
import torch
from nesterov_landscape.config import ConfigError, validate

from .helpers import CONF, compose_config, run_cli

GROUPS = ["model", "data", "optimizer", "probe", "logger", "trainer"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
PRESETS = [p.stem for p in sorted((CONF / "experiment").glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_group_option_composes_and_validates(group, option):
    config = validate(compose_config([f"{group}={option}"]), cuda_available=False)
    if group == "probe":
        assert list(config.probe) == ([] if option == "none" else [option])
    elif group in ("model", "data", "optimizer", "logger"):
        assert getattr(config, group).name == option
    # as the batched launcher sends it to a worker process: the same values, of the same classes
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config and type(copy.optimizer) is type(config.optimizer)


def test_several_probes_in_one_job():
    config = validate(compose_config(["probe=[gradient_line,random_line,hessian,pl]"]), cuda_available=False)
    assert list(config.probe) == ["gradient_line", "random_line", "hessian", "pl"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_validates(preset):
    validate(compose_config([f"experiment={preset}"]), cuda_available=False)


def test_paper_preset_holds_the_choices_that_reproduce_figure_3():
    c = validate(compose_config(["experiment=gupta2025_fig3"]), cuda_available=False)
    assert (c.model.depth, c.model.width, c.model.activation, c.model.init) == (10, 35, "tanh", "pytorch")
    assert (c.data.teacher_depth, c.data.teacher_width, c.data.n_points, c.data.input_dim) == (7, 20, 100, 12)
    assert (c.data.input_dist, c.data.labels, c.data.label_noise) == ("normal", "standardize", 0.0)
    assert (c.loss, c.trainer.precision, c.trainer.epochs) == ("half_mse", "float32", 10000)
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.momentum) == ("nag", 0.005, 0.99)
    line = c.probe["gradient_line"]
    assert (list(c.probe), line.h, line.t_min, line.t_max, line.t_step) == (["gradient_line"], 0.01, -1, 1, 0.01)


def test_preset_wins_over_command_line_defaults_but_not_over_overrides():
    c = validate(
        compose_config(["experiment=gupta2025_fig3", "optimizer.momentum=0.9", "model.width=20"]), cuda_available=False
    )
    assert (c.optimizer.momentum, c.model.width, c.model.depth) == (0.9, 20, 10)


# (override, the key the message must name, a word of the allowed values)
INVALID = [
    ("optimizer.lr=-1", "optimizer.lr", "> 0"),
    ("optimizer.lr=0", "optimizer.lr", "> 0"),
    ("optimizer.momentum=1", "optimizer.momentum", "[0, 1)"),
    ("optimizer.momentum=-0.1", "optimizer.momentum", "[0, 1)"),
    ("model.width=0", "model.width", ">= 1"),
    ("model.depth=0", "model.depth", ">= 1"),
    ("data.n_points=0", "data.n_points", ">= 1"),
    ("trainer.epochs=0", "trainer.epochs", ">= 1"),
    ("probe.gradient_line.h=0", "probe.gradient_line.h", "> 0"),
    ("probe.gradient_line.h=-0.01", "probe.gradient_line.h", "> 0"),
    ("model.activation=sigmoid", "model.activation", "tanh, relu, gelu, softplus"),
    ("trainer.precision=float16", "trainer.precision", "float32, float64"),
    ("trainer.device=cuda", "trainer.device", "cpu"),
    ("+foo=1", "foo", "seed, loss"),
    ("+model.foo=1", "model.foo", "depth, width"),
    ("+optimizer.momentun=0.9", "optimizer.momentun", "lr, momentum"),
    ("probe.gradient_line.t_min=2", "probe.gradient_line", "t_min=2.0 must be < t_max"),
    ("+probe.nope.x=1", "probe nope", "gradient_line, hessian, pl, random_line"),
    ("data.batch_size=1000", "data.batch_size", "at most data.n_points"),
    ("trainer.noise=additive", "trainer.noise", "sigma > 0"),
    ("optimizer=nag_scheme optimizer.mu=0.1", "optimizer", "exactly one of rho and mu"),
    ("optimizer=agnes optimizer.L=10", "optimizer", "both L and mu"),
]


@pytest.mark.parametrize("override,key,allowed", INVALID)
def test_validate_names_the_key_and_the_allowed_values(override, key, allowed):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(override.split()), cuda_available=False)
    message = str(error.value)
    assert key in message and allowed in message and "\n" not in message


def test_cuda_is_accepted_where_it_exists():
    assert validate(compose_config(["trainer.device=cuda"]), cuda_available=True).trainer.device == "cuda"


@pytest.mark.parametrize("override,key,allowed", INVALID)
def test_cli_rejects_bad_input_with_one_line_and_no_files(override, key, allowed, tmp_path):
    if override == "trainer.device=cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here, so device=cuda is valid")
    result = run_cli(*override.split(), cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and allowed in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []  # no output folder, no summary, no W&B run


@pytest.mark.parametrize(
    "override,key",
    [("optimizer.lr=abc", "optimizer.lr"), ("model.widht=3", "model.widht"), ("optimizer=nope", "optimizer/nope")],
)
def test_cli_type_errors_and_typos_fail_while_composing(override, key, tmp_path):
    """Hydra itself rejects these before any job starts; its message names the key."""
    result = run_cli(override, cwd=tmp_path)
    assert result.returncode != 0 and key in result.stderr
    assert list(tmp_path.iterdir()) == []
