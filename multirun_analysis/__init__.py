"""Aggregate harness sweeps (job folders with summary.json, history.csv, landscape.csv, .hydra/) into
tables, figures, a report and one W&B run of job_type analysis. Reads the jobs' files; never imports torch."""
