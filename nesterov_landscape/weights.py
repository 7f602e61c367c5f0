"""A completed job's final weights, kept in its folder (weights.safetensors) so that probes can run
at them later without retraining (docs/reprobe.md).

safetensors rather than torch.save: its header states the tensor's dtype and shape as plain JSON,
and reading it never unpickles, so a weights file copied from someone else cannot run code.
torch.load(weights_only=True) only restricts its unpickler, and that restriction has had holes
(CVE-2025-32434, torch <= 2.5.1). Beside the weights the header records the epoch and hashes of the
training data and the initial weights, which the job's seeds rebuild (problem.setup_problem): a
re-probe checks that they still do, so a torch whose random draws changed cannot slip another
problem under the weights. A diverged run keeps no weights: they are not finite, and no probe
runs there.
"""

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from .job_files import WEIGHTS_FILE, atomic_write_bytes
from .problem import Problem

FORMAT = "nesterov_landscape weights 1"
TENSOR = "weights"


class WeightsError(ValueError):
    """Weights that cannot be used for this job; the message is one line (the caller names the folder)."""


def tensor_hash(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' bytes, in order."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def seeded_hashes(problem: Problem) -> dict[str, str]:
    """Hashes of what the job's seeds build: its data (inputs and labels) and its initial weights."""
    return {"data_sha256": tensor_hash(problem.data.x, problem.data.y), "init_sha256": tensor_hash(problem.init)}


def save(folder: Path, weights: torch.Tensor, epoch: int, problem: Problem) -> None:
    """Write the folder's weights file atomically (recorded in its manifest first)."""
    metadata = {"format": FORMAT, "epoch": str(epoch), **seeded_hashes(problem)}
    data = safetensors.torch.save({TENSOR: weights.detach().cpu().contiguous()}, metadata=metadata)
    atomic_write_bytes(folder / WEIGHTS_FILE, data)


@dataclass
class Stored:
    weights: torch.Tensor  # (P,), on the CPU, in the dtype it was trained in
    epoch: int
    sha256: str  # of the file: a re-probe of other weights (the job retrained since) is not the same


def load(folder: Path, problem: Problem) -> Stored:
    """The folder's weights, checked against the job's problem; WeightsError otherwise."""
    path = folder / WEIGHTS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(
            f"no {WEIGHTS_FILE}: the job ran before weights were kept, or with trainer.save_weights=false; "
            "retrain it (trainer.resume=false) to re-probe it"
        ) from None
    except OSError as error:
        raise WeightsError(f"cannot read {WEIGHTS_FILE}: {error.strerror or error}") from None
    try:
        tensors = safetensors.torch.load(data)  # never unpickles
        metadata = _metadata(data)
    except (safetensors.SafetensorError, ValueError) as error:
        raise WeightsError(f"{WEIGHTS_FILE} is not a safetensors file ({str(error).splitlines()[0]})") from None
    if set(tensors) != {TENSOR} or metadata.get("format") != FORMAT or not metadata.get("epoch", "").isdigit():
        raise WeightsError(f"{WEIGHTS_FILE} is not this tool's weights (expected one tensor {TENSOR!r}, {FORMAT!r})")
    weights = tensors[TENSOR]
    expected = (problem.shape.n_params,)
    if tuple(weights.shape) != expected or weights.dtype != problem.dtype:
        raise WeightsError(
            f"{WEIGHTS_FILE} holds {tuple(weights.shape)} {_dtype(weights.dtype)} weights; the job's config "
            f"(model.*, trainer.precision) has {expected} {_dtype(problem.dtype)}"
        )
    for key, value in seeded_hashes(problem).items():
        if metadata.get(key) != value:
            what = "data" if key == "data_sha256" else "initial weights"
            raise WeightsError(
                f"the {what} rebuilt from the job's seeds differ from those its {WEIGHTS_FILE} was trained on "
                "(another torch or numpy draws other numbers, or summary.json's config was changed)"
            )
    return Stored(weights, int(metadata["epoch"]), hashlib.sha256(data).hexdigest())


def _metadata(data: bytes) -> dict[str, str]:
    """The header's __metadata__ (safetensors.torch.load, which checked the header, drops it)."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]).get("__metadata__") or {}


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
