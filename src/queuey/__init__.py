"""Queuey: a RESTful message queue service."""

__version__ = "1.0.0.dev0"
