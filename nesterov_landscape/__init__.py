"""nesterov-landscape: train a student MLP on teacher labels with momentum methods and probe the
loss landscape near the minimizer (Gupta & Wojtowytsch, ICLR 2025, Figure 3)."""
