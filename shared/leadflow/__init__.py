"""Leadflow's common library: events, configuration, bus, database, metrics and CLI."""

__version__ = "0.1.0"
