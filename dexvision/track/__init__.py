"""Run tracking for every trainer: names with the git SHA, config, metrics, system utilization."""
