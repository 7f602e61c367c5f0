"""Aggregate harness sweeps (job folders with summary.json, history.csv, landscape.csv, .hydra/) into
tables, figures and a report. Reads files only: no torch, no Hydra."""
