"""The numerics, plain torch: the network, the teacher's data, the optimizers' update rules,
training, and the probes' math. They know nothing of config files, Hydra, OmegaConf or W&B
(tests/test_architecture.py checks every module here); the job wires them to those."""
