"""Unit tests: core, config and the service on the memory back-end."""
