"""libxsmm's kernels for the batched products of a compiled float32 stack on the CPU.

A hidden layer of the paper's stack is three small products per run and step (W h, W^T g and the
weight gradient g h^T: 35 x 35 by 35 x 100, 35 x 100 by 100 x 35), most of the compiled step.
libxsmm, a library of just-in-time kernels for small matrices, computes them faster than MKL, with
the same bits on this project's machine (benchmarks/README.md). small_gemm.cpp wraps it as torch
ops, built against the installed torch and libxsmm (Debian's libxsmm-dev) the first time a process
asks, into ~/.cache/nesterov_landscape; without libxsmm, a C++ compiler or a writable cache, stacks
keep torch's products (summary.json's `trained_products` says which trained a run)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("small_gemm.cpp")
_loaded: bool | None = None  # None: not tried in this process


def applies(fast: bool, tensor: torch.Tensor) -> bool:
    """Whether a stack's products on `tensor`'s device and dtype go through libxsmm: `fast` (a
    compiled float32 stack), on the CPU, with the op built."""
    return fast and tensor.device.type == "cpu" and tensor.dtype == torch.float32 and available()


def available() -> bool:
    """Build (once per machine and torch) and load the ops (once per process); False, with one
    line on stderr saying why, where that fails."""
    global _loaded
    if _loaded is None:
        try:
            torch.ops.load_library(str(_built()))
        except (OSError, RuntimeError) as error:
            print(f"small_gemm: training with torch's products, not libxsmm's: {error}", file=sys.stderr)
            _loaded = False
        else:
            for name, (rows, cols) in {"ab": (1, 2), "atb": (2, 2)}.items():
                torch.library.register_fake(f"small_gemm::{name}")(_shape(rows, cols))
            _loaded = True
    return _loaded


def name() -> str:
    """ "libxsmm <version>", as a run's summary records it (available() must hold)."""
    return f"libxsmm {torch.ops.small_gemm.version()}"


def _shape(rows: int, cols: int):
    """The fake (shape-only) form of an op whose output is a's dimension `rows` by b's `cols`."""
    return lambda a, b: a.new_empty(a.shape[0], a.shape[rows], b.shape[cols])


def _built() -> Path:
    """The ops' shared library for this source, torch and compiler, built where missing. Builders
    in parallel each write their own file and rename it into place, so none reads a partial one."""
    torch_dir = Path(torch.__file__).parent
    compiler = os.environ.get("CXX", "c++")
    command = [
        compiler,
        *("-O2", "-std=c++17", "-shared", "-fPIC", "-w", str(SOURCE)),
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        f"-I{torch_dir / 'include'}",
        f"-I{torch_dir / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-L{torch_dir / 'lib'}",
        *("-ltorch", "-ltorch_cpu", "-lc10", "-lxsmm", "-lxsmmnoblas", "-lpthread", "-ldl", "-lm"),
    ]
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join([torch.__version__, *command]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nesterov_landscape"
    library = cache / f"small_gemm-{key}.so"
    if library.exists():
        return library
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"small_gemm-{key}.so.{os.getpid()}.partial"
    try:
        built = subprocess.run([*command, "-o", str(partial)], capture_output=True, text=True)
    except OSError as error:  # no compiler
        raise OSError(f"{compiler}: {error.strerror}") from error
    if built.returncode != 0:
        partial.unlink(missing_ok=True)  # this process's own file, where the compiler left one
        lines = [line for line in built.stderr.splitlines() if "error" in line] or built.stderr.splitlines() or [""]
        raise OSError(f"building {SOURCE.name} failed: {lines[0].strip()}")
    os.replace(partial, library)
    return library


class StackedProduct(torch.autograd.Function):
    """z = W h for stacks W (B, out, in), h (B, in, n), given h^T (B, n, in) too, and its gradients
    W^T g and g h^T. libxsmm 1.17 has no kernel for g h^T from h (a product whose operands are both
    transposed), so it is g times h^T; the copy h^T is computed with h, in the graph's kernel that
    computes h (transposing in the backward pass instead, in C++, measured no faster)."""

    @staticmethod
    def forward(weight: torch.Tensor, h: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        return torch.ops.small_gemm.ab(weight, h)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        weight, _, h_t = inputs
        ctx.save_for_backward(weight, h_t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight, h_t = ctx.saved_tensors
        grad_weight = torch.ops.small_gemm.ab(grad, h_t) if ctx.needs_input_grad[0] else None
        grad_h = torch.ops.small_gemm.atb(weight, grad) if ctx.needs_input_grad[1] else None
        return grad_weight, grad_h, None


def stacked_product(weight: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """weight (B, out, in) @ h (B, in, n) through libxsmm (available() must hold)."""
    return StackedProduct.apply(weight, h, h.transpose(-1, -2).contiguous())
