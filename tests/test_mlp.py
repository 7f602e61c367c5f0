import pytest
import torch

from nesterov_landscape.numerics.choices import ACTIVATION_NAMES
from nesterov_landscape.numerics.mlp import ACTIVATIONS, INITS, MLPShape, forward, init_params

from .helpers import as_module


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_torch_nn(activation, bias):
    shape = MLPShape(input_dim=5, width=7, depth=3, bias=bias)
    params = init_params(shape, "pytorch", torch.Generator().manual_seed(0))
    x = torch.randn(11, 5, dtype=torch.float64)
    expected = as_module(shape, activation, params)(x).squeeze(-1)
    torch.testing.assert_close(forward(shape, activation, params, x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("output_dim", [1, 2])
def test_batched_forward_equals_one_network_at_a_time(output_dim):
    shape = MLPShape(input_dim=4, width=6, depth=2, output_dim=output_dim)
    stacked = torch.stack([init_params(shape, "pytorch", torch.Generator().manual_seed(s)) for s in range(3)])
    x = torch.randn(9, 4, dtype=torch.float64)
    batched = forward(shape, "tanh", stacked, x)
    assert batched.shape == ((3, 9) if output_dim == 1 else (3, 9, output_dim))
    for i in range(3):
        torch.testing.assert_close(batched[i], forward(shape, "tanh", stacked[i], x), rtol=1e-13, atol=1e-13)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# (input_dim, width, depth, points): the paper's shape, and each of the maps that would be a
# matrix-vector product (an input of one feature, a hidden width of one, one data point) beside ones
# small enough for torch's own loop (width 2, 7 points)
SHAPES = [(12, 35, 10, 100), (1, 35, 2, 100), (12, 1, 2, 100), (12, 64, 2, 1), (1, 64, 1, 7), (3, 2, 3, 100)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("input_dim, width, depth, points", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_a_network_gets_the_same_bits_in_a_stack_of_any_size(one_thread, dtype, input_dim, width, depth, points, bias):
    """Each network's loss and gradient in stacks of 1, 2 and 5 (its own data per network), with one
    torch thread (trainer.threads' default; more split a product among threads by its size): a
    batched matmul's backward took another MKL kernel for one network than for several (issue 17's
    worker-count dependence), so a job's numbers depended on how its sweep was split."""
    shape = MLPShape(input_dim, width, depth, bias)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, points, input_dim, generator=generator, dtype=torch.float64).to(dtype)
    y = torch.randn(5, points, generator=generator, dtype=torch.float64).to(dtype)
    weights = torch.stack([init_params(shape, "pytorch", torch.Generator().manual_seed(s)) for s in range(5)])

    def loss_and_gradient(runs: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = weights[:runs].to(dtype).requires_grad_()
        loss = (forward(shape, "tanh", w, x[:runs]) - y[:runs]).square().mean(-1)
        return loss.detach(), torch.autograd.grad(loss.sum(), w)[0]

    stacks = {runs: loss_and_gradient(runs) for runs in (1, 2, 5)}
    for runs, (loss, gradient) in stacks.items():
        assert torch.equal(loss[0], stacks[1][0][0]) and torch.equal(gradient[0], stacks[1][1][0]), runs
    assert torch.equal(stacks[2][1][1], stacks[5][1][1])
    single = weights[0].to(dtype).requires_grad_()  # the same numbers as the one-network form, to rounding
    reference = (forward(shape, "tanh", single, x[0]) - y[0]).square().mean()
    tolerance = 1e-12 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(stacks[1][0][0], reference.detach(), rtol=tolerance, atol=0)
    torch.testing.assert_close(
        stacks[1][1][0], torch.autograd.grad(reference, single)[0], rtol=tolerance, atol=tolerance * 1e-2
    )


def test_depth_counts_hidden_layers():
    shape = MLPShape(input_dim=12, width=35, depth=10)
    assert len(shape.layers) == 11
    assert shape.n_params == (12 * 35 + 35) + 9 * (35 * 35 + 35) + (35 + 1)


def test_pytorch_init_has_nn_linear_bounds():
    shape = MLPShape(input_dim=50, width=200, depth=1)
    params = init_params(shape, "pytorch", torch.Generator().manual_seed(0))
    first = params[: 50 * 200]
    bound = 50**-0.5
    assert first.abs().max() <= bound
    # U(-b, b) has std b / sqrt(3)
    assert abs(first.std().item() - bound / 3**0.5) < 0.02 * bound


@pytest.mark.parametrize("init", INITS)
def test_init_is_seeded(init):
    shape = MLPShape(input_dim=3, width=4, depth=2)
    a = init_params(shape, init, torch.Generator().manual_seed(7))
    b = init_params(shape, init, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (shape.n_params,)


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus"])
def test_autograd_gradient_matches_finite_differences(activation):
    shape = MLPShape(input_dim=3, width=5, depth=2)
    params = init_params(shape, "pytorch", torch.Generator().manual_seed(1))
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, dtype=torch.float64)

    def loss(w):
        return 0.5 * (forward(shape, activation, w, x) - y).square().mean()

    w = params.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(w), w)
    eps = 1e-6
    basis = torch.eye(shape.n_params, dtype=torch.float64)
    fd = torch.stack([(loss(params + eps * e) - loss(params - eps * e)) / (2 * eps) for e in basis])
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)


def test_the_network_implements_exactly_the_activations_the_config_allows():
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
