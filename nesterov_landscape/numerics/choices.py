"""The values the config's choice keys allow, in one torch-free module: config.py checks against them
without importing torch (so `python -m nesterov_landscape --help` does not pay for it), and the
numerics that implement the choices refuse any other value with these names in the message
(tests/test_mlp.py checks that mlp.ACTIVATIONS implements exactly ACTIVATION_NAMES)."""

ACTIVATION_NAMES = ("tanh", "relu", "gelu", "softplus")  # model.activation; mlp.ACTIVATIONS holds the functions
INITS = ("pytorch", "xavier_normal", "lecun_normal")  # model.init
INPUT_DISTS = ("normal", "uniform")  # data.input_dist
LABELS = ("standardize", "raw")  # data.labels
LOSSES = ("half_mse", "mse")  # loss
NOISE_KINDS = ("none", "additive", "multiplicative")  # trainer.noise
INF_PHI = ("zero", "grid_min")  # probe.gradient_line.inf_phi
PRECISIONS = ("float32", "float64")  # trainer.precision and the probes' precision
