"""Contract tests: one body per behaviour, run against every storage back-end."""
