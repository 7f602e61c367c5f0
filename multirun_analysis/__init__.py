"""Aggregate harness sweeps (job folders with summary.json, history.csv, landscape.csv, .hydra/) into
tables, figures, a report and one W&B run of job_type analysis. Reads the jobs' files and never needs
torch; it does import Hydra: load.py expands a sweep's multirun.yaml into its jobs with Hydra's
override parser and basic sweeper (hydra._internal)."""
