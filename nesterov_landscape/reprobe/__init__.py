"""Re-probing finished jobs at their kept weights, without retraining (docs/reprobe.md):
`python -m nesterov_landscape.reprobe FOLDER... [OVERRIDE...] [--name NAME]`. overrides.py reads
the probe overrides, run.py re-probes each job into <job>/reprobe/<name>/."""
