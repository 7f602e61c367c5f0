"""Independent seeds for the data, the student, noise, the probes' random draws ... from one
top-level seed."""

import zlib

import numpy as np


def derive_seed(seed: int, stream: str) -> int:
    """The seed of `stream` (a name: "data", "model", ...) under the top-level seed."""
    return int(np.random.SeedSequence([seed, zlib.crc32(stream.encode())]).generate_state(1)[0])
