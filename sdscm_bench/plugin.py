"""pytest plugin of sdscm-bench (work in progress)."""
