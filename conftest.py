"""Load the sdscm-bench pytest plugin from the checkout, whether or not its entry point is installed."""

pytest_plugins = ["sdscm_bench.plugin"]
