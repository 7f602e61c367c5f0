import pytest
import torch

from nesterov_landscape.numerics.data import make_teacher_data
from nesterov_landscape.numerics.mlp import MLPShape, forward, init_params

TEACHER = MLPShape(input_dim=12, width=20, depth=7)


def draw(seed=0, **kwargs):
    args = (
        dict(
            n_points=100,
            input_dim=12,
            input_dist="normal",
            teacher=TEACHER,
            teacher_activation="tanh",
            labels="standardize",
            label_noise=0.0,
        )
        | kwargs
    )
    return make_teacher_data(**args, generator=torch.Generator().manual_seed(seed))


def test_standardized_labels_have_zero_mean_unit_std():
    data = draw()
    assert data.y.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert data.y.std(correction=0).item() == pytest.approx(1.0, rel=1e-12)


def test_raw_labels_are_the_teachers_outputs():
    data = draw(labels="raw")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 12, generator=gen, dtype=torch.float64)
    teacher = init_params(TEACHER, "pytorch", gen)
    torch.testing.assert_close(data.y, forward(TEACHER, "tanh", teacher, x))
    # science.md: with PyTorch's default init the teacher's outputs are nearly constant
    assert data.raw_label_std < 0.1


def test_uniform_inputs_lie_in_the_cube():
    data = draw(input_dist="uniform")
    assert data.x.abs().max() <= 1 and data.x.min() < -0.9


def test_label_noise_is_added_after_standardizing():
    """noisy - clean is 0.1 N(0, 1) in standardized units (before standardizing it would be 0.1 / raw std,
    about 10x larger): over 10,000 points its std is within 3 standard errors (0.1 / sqrt(2n) each) of 0.1
    and its mean within 3 standard errors (0.1 / sqrt(n)) of 0."""
    n = 10_000
    clean, noisy = draw(n_points=n), draw(n_points=n, label_noise=0.1)
    noise = noisy.y - clean.y
    assert abs(noise.std().item() - 0.1) < 3 * 0.1 / (2 * n) ** 0.5
    assert abs(noise.mean().item()) < 3 * 0.1 / n**0.5
    assert clean.y.std(correction=0).item() == pytest.approx(1.0, rel=1e-12)


def test_same_seed_same_data_other_seed_other_data():
    assert torch.equal(draw(1).y, draw(1).y)
    assert not torch.equal(draw(1).y, draw(2).y)
