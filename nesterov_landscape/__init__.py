"""nesterov-landscape: train a student MLP on teacher labels with momentum methods and probe the
loss landscape near the minimizer (Gupta & Wojtowytsch, ICLR 2025, Figure 3)."""

import os

# MKL's strict conditional numerical reproducibility, read at its first call (so here, before any
# module imports torch): without it MKL's batched matrix products give a matrix other last bits by
# its run's position in the stack (odd or even with width 35), so a batched job's numbers would depend on
# how its sweep was split into stacks. A quick check on the paper's model found no cost in speed.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
