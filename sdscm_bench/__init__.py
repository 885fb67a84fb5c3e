"""sdscm-bench: pytest-style benchmarks of causal effect estimators on SD-SCM data."""

__version__ = "0.1.0"
