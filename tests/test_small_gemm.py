"""libxsmm's products for compiled float32 stacks (numerics/small_gemm): the products and their
gradients against float64 ones, a compiled stack's training with them against torch's products
through the real entry point, and the fallback where they cannot be built. Where libxsmm is not
installed the tests that need it skip; where REQUIRE_LIBXSMM=1 (.ci/run sets it, having installed
Debian's libxsmm-dev) they fail."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nesterov_landscape.numerics import small_gemm

from .helpers import ROOT, TINY, configs, run_cli

COMPILED = [*TINY, "trainer.compile=true", "trainer.precision=float32", "trainer.epochs=200", "probe=none"]


def require_libxsmm() -> None:
    if not small_gemm.available():
        if os.environ.get("REQUIRE_LIBXSMM") == "1":
            pytest.fail("libxsmm's products could not be built (stderr says why)")
        pytest.skip("libxsmm is not installed (Debian's libxsmm-dev)")


def rounding_bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise bound on float32's error in a @ b (float64 tensors holding float32 values):
    K roundings of at most 2^-24 of the partial sums, which |a| @ |b| bounds."""
    return a.shape[-1] * 2.0**-24 * (a.abs() @ b.abs()) + 1e-30


@pytest.mark.parametrize(
    "runs, fan_out, fan_in, points",
    [(3, 35, 35, 100), (2, 35, 12, 100), (4, 7, 5, 3), (2, 300, 200, 64)],  # the last: torch's bmm (> 64^3)
)
def test_the_products_and_their_gradients_are_float64s_within_float32_rounding(runs, fan_out, fan_in, points):
    require_libxsmm()
    generator = torch.Generator().manual_seed(0)
    # as a stack sees them: weights as views into flat parameter rows (a batch stride beyond the
    # matrix), the first layer's input a transposed view of the data, a gradient not dense
    flat = torch.randn(runs, 3 + fan_out * fan_in, generator=generator).requires_grad_()
    weight = flat[:, 3:].unflatten(-1, (fan_out, fan_in))
    data = torch.randn(runs, points, fan_in, generator=generator).requires_grad_()
    h = data.transpose(-1, -2)
    grad = torch.randn(runs, points, fan_out, generator=generator).transpose(-1, -2)
    z = small_gemm.stacked_product(weight, h)
    z.backward(grad)
    w64, h64, g64 = weight.detach().double(), h.detach().double(), grad.double()
    for got, a, b in (
        (z, w64, h64),
        (flat.grad[:, 3:].unflatten(-1, (fan_out, fan_in)), g64, h64.mT),
        (data.grad.transpose(-1, -2), w64.mT, g64),
    ):
        error = (got.detach().double() - a @ b).abs()
        assert (error <= rounding_bound(a, b)).all(), error.max()
    assert (flat.grad[:, :3] == 0).all()


def summary_of(run: subprocess.CompletedProcess, out: Path) -> dict:
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.guards("foreign files deleted")
def test_a_compiled_stack_trains_with_libxsmm_as_with_torchs_products_and_says_which(tmp_path):
    """The same job through `python -m nesterov_landscape`: once with libxsmm's products, once where
    the op cannot be built (its cache cannot be made: XDG_CACHE_HOME is a file, as where a home is
    read-only): torch's products, one line on stderr saying why, and the same training up to
    float32 rounding."""
    require_libxsmm()
    fast = summary_of(run_cli(*COMPILED, f"hydra.run.dir={tmp_path / 'libxsmm'}", cwd=tmp_path), tmp_path / "libxsmm")
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a user's file")
    fallback_run = run_cli(
        *COMPILED, f"hydra.run.dir={tmp_path / 'torch'}", cwd=tmp_path, env={"XDG_CACHE_HOME": str(not_a_folder)}
    )
    fallback = summary_of(fallback_run, tmp_path / "torch")
    assert fast["trained_products"] == small_gemm.name() and fallback["trained_products"] == "torch"
    said = [line for line in fallback_run.stderr.splitlines() if line.startswith("small_gemm:")]
    assert len(said) == 1 and said[0].startswith("small_gemm: training with torch's products, not libxsmm's:"), said
    assert not_a_folder.read_text() == "a user's file"
    assert fast["status"] == fallback["status"] == "completed"
    assert fast["final_loss"] == pytest.approx(fallback["final_loss"], rel=1e-4)
    first_loss = float((tmp_path / "torch" / "history.csv").read_text().splitlines()[1].split(",")[1])
    assert fast["final_loss"] < 0.5 * first_loss  # it trained


@pytest.mark.guards("foreign files deleted")
def test_a_failed_build_says_why_in_a_line_and_leaves_no_file(tmp_path, monkeypatch):
    """A compiler that writes its output and then fails: the error is one line, and the partial
    library it wrote is gone; a user's files in the cache folder, one named like a partial library
    too, stay."""
    compiler = tmp_path / "broken-c++"
    compiler.write_text(
        '#!/bin/sh\nfor last; do :; done\necho partial > "$last"\necho "x.cpp:1: error: broken" >&2\nexit 1\n'
    )
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "nesterov_landscape"
    cache.mkdir(parents=True)
    users = {"notes.txt": "mine\n", "small_gemm-0123456789abcdef.x.partial": "not the tool's\n"}
    for name, text in users.items():
        (cache / name).write_text(text)
    with pytest.raises(OSError, match=r"^building small_gemm.cpp failed: x.cpp:1: error: broken$"):
        small_gemm._built()
    assert {p.name: p.read_text() for p in cache.iterdir() if p.suffix != ".lock"} == users
    assert [p.suffix for p in cache.iterdir()].count(".lock") == 1


@pytest.mark.slow
def test_a_library_cut_short_in_the_cache_is_built_again(tmp_path, monkeypatch):
    """A cached library that a crash or a power loss left truncated is not loaded (loading one
    crashes the process) but built again in its place; a user's file named like the build's
    temporary file stays."""
    require_libxsmm()
    whole = small_gemm._built()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cut_short = tmp_path / "nesterov_landscape" / whole.name
    cut_short.parent.mkdir()
    cut_short.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    users = cut_short.with_name(f"{whole.stem}.x.partial")
    users.write_text("not the tool's\n")
    assert small_gemm._built() == cut_short and cut_short.read_bytes() == whole.read_bytes()
    assert users.read_text() == "not the tool's\n"
    assert sorted(p.suffix for p in cut_short.parent.iterdir()) == [".lock", ".partial", ".so"]


@pytest.mark.slow
def test_processes_building_the_op_at_once_each_load_a_whole_library(tmp_path):
    """Two fresh processes build into one empty cache at the same time: both load the op, one
    library is left, and no partial file."""
    require_libxsmm()
    code = "from nesterov_landscape.numerics import small_gemm; print(small_gemm.available())"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    builders = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    assert [b.communicate(timeout=300)[0].strip() for b in builders] == ["True", "True"]
    left = sorted(p.suffix for p in (tmp_path / "nesterov_landscape").iterdir())
    assert left == [".lock", ".so"], left  # one library, its lock, and no partial file


def test_a_stack_with_libxsmms_products_steps_in_chunks_of_the_divisor_nearest_ten():
    from nesterov_landscape.stack import runs_per_call

    libxsmm = "libxsmm 1.17 (cpx)"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = (1, 12, 13, 16, 20, 34, 47, 50, 64, 100)
        assert [runs_per_call(r, libxsmm) for r in runs] == [1, 12, 13, 8, 10, 17, 47, 10, 8, 10]
        assert runs_per_call(50, "torch") == 50
        torch.set_num_threads(2)  # chunks were measured on one thread only
        assert runs_per_call(50, libxsmm) == 50
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_stack_in_chunks_gives_every_run_its_bits_from_one_graph(monkeypatch):
    """20 runs step as 2 chunks of 10, from one compiled graph; every run, one diverging in the
    second chunk included, gets the history and weights it gets in a stack of 3 (one chunk), with
    one torch thread (the bits of a stack of any size)."""
    require_libxsmm()
    from nesterov_landscape.numerics import training
    from nesterov_landscape.stack import train_jobs

    chunk_sizes = []
    train_stack = training.train_stack

    def recording_chunk_size(*args, **kwargs):
        chunk_sizes.append(kwargs["runs_per_call"])
        return train_stack(*args, **kwargs)

    monkeypatch.setattr(training, "train_stack", recording_chunk_size)
    common = ["trainer.precision=float32", "trainer.compile=true", "trainer.epochs=100", "probe=none"]
    runs = [[*common, "model.width=35", "data.n_points=100", f"seed={s}"] for s in range(20)]
    runs[15].append("optimizer.lr=10")
    graphs = torch._dynamo.utils.counters["stats"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        before = graphs["unique_graphs"]
        chunked = train_jobs(configs(*runs))
        assert graphs["unique_graphs"] - before == 1
        few = train_jobs(configs(*[runs[i] for i in (0, 15, 19)]))
    finally:
        torch.set_num_threads(threads)
    assert chunk_sizes == [10, 3]
    assert [r.status for r in few] == ["completed", "diverged", "completed"]
    for index, one_chunk in zip((0, 15, 19), few):
        assert json.dumps(chunked[index].history) == json.dumps(one_chunk.history)  # NaN as NaN
        torch.testing.assert_close(chunked[index].params, one_chunk.params, rtol=0, atol=0, equal_nan=True)
        assert chunked[index].epochs_run == one_chunk.epochs_run
    assert len({r.history[-1]["loss"] for r in chunked}) == 20  # the runs differ
