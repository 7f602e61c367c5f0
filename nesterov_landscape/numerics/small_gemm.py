"""libxsmm's kernels for the batched products of a compiled float32 stack on the CPU.

A hidden layer of the paper's stack is three small products per run and step (W h, W^T g and the
weight gradient g h^T: 35 x 35 by 35 x 100, 35 x 100 by 100 x 35), most of the compiled step.
libxsmm, a library of just-in-time kernels for small matrices, computes them faster than MKL, with
the same bits on this project's machine (benchmarks/README.md). small_gemm.cpp wraps it as torch
ops; how they are built, cached and recorded, and when stacks keep torch's products instead:
docs/sweeps.md#compiled-training."""

import fcntl
import hashlib
import os
import platform
import re
import shlex
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("small_gemm.cpp")
LIBXSMM_VERSION_HEADER = Path("/usr/include/libxsmm_version.h")  # Debian's; part of the build's key
_loaded: bool | None = None  # None: not tried in this process


def applies(fast: bool, tensor: torch.Tensor) -> bool:
    """Whether a stack's products on `tensor`'s device and dtype go through libxsmm: `fast` (a
    compiled float32 stack), on the CPU, with the op built."""
    return fast and tensor.device.type == "cpu" and tensor.dtype == torch.float32 and available()


def available() -> bool:
    """Build (once per source, torch, compiler and libxsmm) and load the ops (once per process);
    False, with one line on stderr saying why, where that fails."""
    global _loaded
    if _loaded is None:
        try:
            torch.ops.load_library(str(_built()))
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            print(f"small_gemm: training with torch's products, not libxsmm's: {error}", file=sys.stderr)
            _loaded = False
        else:
            for name, (rows, cols) in {"ab": (1, 2), "atb": (2, 2)}.items():
                torch.library.register_fake(f"small_gemm::{name}")(_shape(rows, cols))
            _loaded = True
    return _loaded


def name() -> str:
    """ "libxsmm <version> (<the instruction set of its kernels>)", as a run's summary records it
    (available() must hold): float32's last bits depend on both."""
    return f"libxsmm {torch.ops.small_gemm.version()}"


def _shape(rows: int, cols: int):
    """The fake (shape-only) form of an op whose output is a's dimension `rows` by b's `cols`."""
    return lambda a, b: a.new_empty(a.shape[0], a.shape[rows], b.shape[cols])


def _built() -> Path:
    """The ops' shared library for this source, torch, compiler, libxsmm and C library, built where
    missing or not whole (a build cut short by a crash or power loss). One process builds into a
    cache folder at a time (a lock file); it writes a file it created itself (mkstemp), synced, and
    renames it into place, so that no process ever loads a partial library."""
    torch_dir = Path(torch.__file__).parent
    compiler = shlex.split(os.environ.get("CXX") or "c++")
    command = [
        *compiler,
        *("-O2", "-std=c++17", "-shared", "-fPIC", "-w", str(SOURCE)),
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        f"-I{torch_dir / 'include'}",
        f"-I{torch_dir / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-L{torch_dir / 'lib'}",
        *("-ltorch", "-ltorch_cpu", "-lc10", "-lxsmm", "-lxsmmnoblas", "-lpthread", "-ldl", "-lm"),
    ]
    libxsmm = LIBXSMM_VERSION_HEADER.read_bytes() if LIBXSMM_VERSION_HEADER.exists() else b""
    inputs = [torch.__version__, *platform.libc_ver(), platform.machine(), *command]
    key = hashlib.sha256(SOURCE.read_bytes() + libxsmm + " ".join(inputs).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nesterov_landscape"
    library = cache / f"small_gemm-{key}.so"
    if _whole(library):
        return library
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"small_gemm-{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _whole(library):  # another process built it while this one waited
            return library
        handle, partial_name = tempfile.mkstemp(dir=cache, prefix=f"small_gemm-{key}.", suffix=".partial")
        os.close(handle)
        partial = Path(partial_name)
        try:
            built = subprocess.run(
                [*command, "-o", str(partial)], capture_output=True, text=True, errors="replace", timeout=600
            )
            if built.returncode != 0:
                raise OSError(f"building {SOURCE.name} failed: {_first_error(built.stderr)}")
            with open(partial, "rb") as written:
                os.fsync(written.fileno())
            os.replace(partial, library)
        except BaseException:
            partial.unlink(missing_ok=True)  # the file mkstemp created for this build, which did not finish
            raise
        directory = os.open(cache, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return library


def _whole(library: Path) -> bool:
    """Whether `library` is a whole ELF file: its section headers, which the linker writes last, end
    where the file does."""
    try:
        with open(library, "rb") as file:
            header = file.read(64)
            size = os.fstat(file.fileno()).st_size
    except OSError:
        return False
    if len(header) < 64 or header[:5] != b"\x7fELF\x02":  # 64-bit ELF
        return False
    (section_headers,) = struct.unpack_from("<Q", header, 0x28)
    entry_size, entries = struct.unpack_from("<HH", header, 0x3A)
    return section_headers > 0 and section_headers + entry_size * entries == size


def _first_error(stderr: str) -> str:
    """The compiler's or linker's first line that says what went wrong (not collect2's summary)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"error:|ld: |cannot find", line) and "collect2" not in line]
    return (errors or lines or ["no message"])[0]


class StackedProduct(torch.autograd.Function):
    """z = W h for stacks W (B, out, in), h (B, in, n), given h^T (B, n, in) too, and its gradients
    W^T g and g h^T. libxsmm 1.17 makes no kernel for g h^T from h as stored (its first operand
    would be the transposed one), so it is g times a copy h^T, which Inductor fuses into one of the
    graph's kernels that read h (in the paper's step, tanh's derivative); transposing in C++ within
    the product measured no faster."""

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
